{{ config(tags=['post_forecast']) }}
-- One trading signal per (ticker, date): the forecast of the model governance made active at
-- that close, with its confidence and the trade gate (ml/governed_signals).
with signals as (
    select * from {{ ref('stg_ml__governed_signals') }}
    where horizon = {{ var('signal_horizon') }}
),

features as (
    select ticker, date, volatility_ratio_10_63 from {{ ref('features') }}
),

final as (
    select
        s.ticker,
        s.date,
        s.horizon,
        s.model,
        s.expected_return,
        s.forecast_std,
        s.confidence,
        s.direction,
        s.tradable,
        s.block_reason,
        s.conf_probability,
        s.conf_accuracy,
        s.conf_agreement,
        s.conf_width,
        s.conf_fit,
        s.conf_variance_ratio,
        s.conf_classifier,
        s.flips,
        case
            when x.volatility_ratio_10_63 is null then 'unknown'
            when x.volatility_ratio_10_63 > 1.25 then 'high_volatility'
            when x.volatility_ratio_10_63 < 0.8 then 'low_volatility'
            else 'normal'
        end as regime
    from signals as s
    left join features as x
        on x.ticker = s.ticker and x.date = s.date
)

select * from final
