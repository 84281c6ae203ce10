{{ config(tags=['post_forecast']) }}

with source as (
    select * from {{ source('ml', 'base_forecasts') }}
),

final as (
    select
        model,
        ticker,
        cast(asof_date as date) as asof_date,
        cast(horizon as integer) as horizon,
        cast(target_date as date) as target_date,
        y_pred, y_lower, y_upper, y_std, confidence,
        cast(train_end as date) as train_end
    from source
)

select * from final
