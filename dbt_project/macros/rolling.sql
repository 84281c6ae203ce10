{#- A trailing window aggregate over the last n sessions of a ticker, NULL until the
    window holds n non-null values (never a partial-window value, and never a window
    that spans a missing session). -#}
{% macro rolling(agg, expr, n, partition='ticker', order='date', count_expr=none) -%}
    case when count({{ count_expr or expr }}) over (partition by {{ partition }} order by {{ order }} rows between {{ n - 1 }} preceding and current row) = {{ n }}
         then {{ agg }}({{ expr }}) over (partition by {{ partition }} order by {{ order }} rows between {{ n - 1 }} preceding and current row)
    end
{%- endmacro %}

{#- The value n sessions earlier on the ticker's session calendar (NULL if missing). -#}
{% macro lag_sessions(expr, n, partition='ticker', order='date') -%}
    lag({{ expr }}, {{ n }}) over (partition by {{ partition }} order by {{ order }})
{%- endmacro %}

{#- NULL instead of NaN or infinity (DuckDB's corr of a constant series is NaN). -#}
{% macro finite_or_null(expr) -%}
    case when isfinite({{ expr }}) then {{ expr }} end
{%- endmacro %}

{#- Sum over the last n sessions of a ticker (no completeness check: callers check counts). -#}
{% macro window_sum(expr, n, partition='ticker', order='date') -%}
    sum({{ expr }}) over (partition by {{ partition }} order by {{ order }} rows between {{ n - 1 }} preceding and current row)
{%- endmacro %}
