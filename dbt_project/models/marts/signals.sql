{{ config(tags=['post_forecast']) }}
-- One trading signal per (ticker, date) from the ensemble forecast at the signal horizon.
with forecasts as (
    select * from {{ ref('forecasts') }}
    where model = 'ensemble' and horizon = {{ var('signal_horizon') }}
),

features as (
    select ticker, date, volatility_ratio_10_63 from {{ ref('features') }}
),

final as (
    select
        f.ticker,
        f.asof_date as date,
        f.horizon,
        f.y_pred as expected_return,
        f.y_std as forecast_std,
        f.confidence,
        cast(sign(f.y_pred) as integer) as direction,
        case
            when x.volatility_ratio_10_63 is null then 'unknown'
            when x.volatility_ratio_10_63 > 1.25 then 'high_volatility'
            when x.volatility_ratio_10_63 < 0.8 then 'low_volatility'
            else 'normal'
        end as regime
    from forecasts as f
    left join features as x
        on x.ticker = f.ticker and x.date = f.asof_date
)

select * from final
