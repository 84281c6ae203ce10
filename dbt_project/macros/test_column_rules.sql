{#- Generic test on a model: every rule its columns declare in their YAML `meta` holds.

      config: {meta: {not_null: true}}                      the column holds no NULL
      config: {meta: {accepted_values: [-1, 0, 1]}}         every non-NULL value is one of these
      config: {meta: {range: {min: 0, max: 1}}}             every non-NULL value is finite and inside
                                                             the bounds (either bound optional)

    Why one test per model rather than dbt's `not_null` / `accepted_values` per column: each dbt test
    node costs ~30 ms of dbt's and Dagster's own work around a ~15 ms query (dbt's debug log of a daily
    refresh), and the refresh runs the tests of every model it rebuilds: its 125 test nodes became
    46 (docs/benchmarks.md). The rules stay beside the column they constrain, and a failing row names the
    rule, the column and the value, then the whole row (`dbt test --store-failures` keeps them). -#}
{% test column_rules(model) %}
{%- set checks = [] -%}
{%- if execute -%}
  {#- `model` is the relation, or a subquery of it where the test reads some rows (macros/test_scope.sql):
      either way its text names the relation, quoted, so the match is exact -#}
  {%- for node in graph.nodes.values()
        if node.resource_type == "model" and node.relation_name and node.relation_name in (model | string) -%}
    {%- for column in node.columns.values() -%}
      {%- set meta = (column.config or {}).meta or {} -%}
      {%- if meta.get("not_null") -%}
        {%- do checks.append((column.name, "not_null", column.name ~ " is null")) -%}
      {%- endif -%}
      {%- if meta.get("accepted_values") is not none -%}
        {%- set literals = [] -%}
        {%- for value in meta.get("accepted_values") -%}
          {%- if value is boolean -%}{%- do literals.append("true" if value else "false") -%}
          {%- elif value is number -%}{%- do literals.append(value | string) -%}
          {%- else -%}{%- do literals.append("'" ~ (value | replace("'", "''")) ~ "'") -%}
          {%- endif -%}
        {%- endfor -%}
        {%- do checks.append((column.name, "accepted_values",
              column.name ~ " is not null and " ~ column.name ~ " not in (" ~ literals | join(", ") ~ ")")) -%}
      {%- endif -%}
      {%- set bounds = meta.get("range") -%}
      {%- if bounds -%}
        {%- set outside = ["not isfinite(" ~ column.name ~ "::double)"] -%}
        {%- if bounds.get("min") is not none -%}{%- do outside.append(column.name ~ " < " ~ bounds.get("min")) -%}{%- endif -%}
        {%- if bounds.get("max") is not none -%}{%- do outside.append(column.name ~ " > " ~ bounds.get("max")) -%}{%- endif -%}
        {%- do checks.append((column.name, "range",
              column.name ~ " is not null and (" ~ outside | join(" or ") ~ ")")) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
{%- endif -%}
{%- if checks | length == 0 %}
select null::varchar as broken_rule, null::varchar as broken_column, null::varchar as broken_value where false
{%- else %}
{#- one scan of the model finds the rows that break any rule; each rule then reads only those -#}
with broken_rows as materialized (
    select * from {{ model }}
    where {% for name, rule, broken in checks %}{% if not loop.first %}
       or {% endif %}({{ broken }}){% endfor %}
)
{%- for name, rule, broken in checks %}
{% if not loop.first %}union all
{% endif -%}
select '{{ rule }}' as broken_rule, '{{ name }}' as broken_column, {{ name }}::varchar as broken_value, *
from broken_rows
where {{ broken }}
{%- endfor %}
{%- endif %}
{% endtest %}
