{#- Source precedence for a (ticker, date) several sources carry: the user's files, then OHLCV,
    then close-only. One place, so staging and the data-quality mart agree on who wins. -#}
{% macro source_rank(column) -%}
    case {{ column }} when 'csv' then 1 when 'arch' then 2 when 'skfolio' then 3 else 9 end
{%- endmacro %}
