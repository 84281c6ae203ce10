{#- Typed columns of a forecasts table written by the Python forecasting assets. -#}
{% macro stage_forecasts(relation, has_train_end=true) %}
with source as (
    select * from {{ relation }}
),

final as (
    select
        model,
        ticker,
        cast(asof_date as date) as asof_date,
        cast(horizon as integer) as horizon,
        cast(target_date as date) as target_date,
        y_pred, y_lower, y_upper, y_std, confidence,
        {% if has_train_end %}cast(train_end as date){% else %}cast(null as date){% endif %} as train_end,
        {% if has_train_end %}fit_id{% else %}cast(null as varchar){% endif %} as fit_id
    from source
)

select * from final
{% endmacro %}
