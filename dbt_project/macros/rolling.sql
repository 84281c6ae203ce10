{#- A trailing window aggregate over the last n sessions of a ticker, NULL until the
    window holds n non-null values (never a partial-window value). -#}
{% macro rolling(agg, expr, n, partition='ticker', order='date') -%}
    case when count({{ expr }}) over (partition by {{ partition }} order by {{ order }} rows between {{ n - 1 }} preceding and current row) = {{ n }}
         then {{ agg }}({{ expr }}) over (partition by {{ partition }} order by {{ order }} rows between {{ n - 1 }} preceding and current row)
    end
{%- endmacro %}
