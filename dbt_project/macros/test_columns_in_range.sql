{#- Generic test on a model: every column that declares a range holds only finite values inside it
    (NULLs pass). A column declares it in its YAML as `config: {meta: {range: {min: .., max: ..}}}`,
    either bound optional, so the range is documented beside the column it constrains.

    One query checks all of a model's ranges: each dbt test node costs ~20 ms of dbt's own work before
    its SQL runs, and marts.features alone declares 56 ranges (the daily refresh runs these tests every
    day). A failing row names its column, row key and value. -#}
{% test columns_in_range(model) %}
{%- set checks = [] -%}
{%- if execute -%}
  {%- for node in graph.nodes.values()
        if node.resource_type == "model" and node.schema == model.schema and node.alias == model.identifier -%}
    {%- for column in node.columns.values() -%}
      {%- set bounds = ((column.config or {}).meta or {}).get("range") -%}
      {%- if bounds -%}
        {%- do checks.append((column.name, bounds.get("min"), bounds.get("max"))) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
{%- endif -%}
{%- if checks | length == 0 %}
select null::varchar as range_column, null::double as range_value where false
{%- else -%}
{%- for name, lo, hi in checks %}
{% if not loop.first %}union all
{% endif -%}
select '{{ name }}' as range_column, {{ name }}::double as range_value, *
from {{ model }}
where {{ name }} is not null
  and (not isfinite({{ name }}::double)
    {%- if lo is not none %} or {{ name }} < {{ lo }}{% endif %}
    {%- if hi is not none %} or {{ name }} > {{ hi }}{% endif %})
{%- endfor %}
{%- endif %}
{% endtest %}
