{{ config(tags=['post_forecast']) }}

with source as (
    select * from {{ source('ml', 'governed_signals') }}
),

final as (
    select
        cast(ticker as varchar) as ticker,
        cast(asof_date as date) as date,
        cast(horizon as integer) as horizon,
        cast(model as varchar) as model,
        y_pred as expected_return,
        y_std as forecast_std,
        y_lower,
        y_upper,
        probability as conf_probability,
        accuracy as conf_accuracy,
        agreement as conf_agreement,
        width as conf_width,
        fit as conf_fit,
        variance_ratio as conf_variance_ratio,
        classifier as conf_classifier,
        confidence,
        cast(direction as integer) as direction,
        cast(flips as integer) as flips,
        cast(tradable as boolean) as tradable,
        cast(block_reason as varchar) as block_reason
    from source
)

select * from final
