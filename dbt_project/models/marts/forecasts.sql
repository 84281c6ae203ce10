{{ config(tags=['post_forecast']) }}
-- Every out-of-sample forecast, single models and the ensemble, with the realised value
-- attached once the target session exists.
with base_forecasts as (
    select * from {{ ref('stg_ml__base_forecasts') }}
),

ensemble_forecasts as (
    select * from {{ ref('stg_ml__ensemble_forecasts') }}
),

targets as (
    select * from {{ ref('targets') }}
),

all_forecasts as (
    select * from base_forecasts
    union all
    select * from ensemble_forecasts
),

final as (
    select
        f.model,
        f.ticker,
        f.asof_date,
        f.horizon,
        f.target_date,
        f.y_pred,
        f.y_lower,
        f.y_upper,
        case f.horizon
            when 1 then t.fwd_return_1d
            when 5 then t.fwd_return_5d
            when 21 then t.fwd_return_21d
            when 63 then t.fwd_return_63d
        end as y_true,
        f.y_std,
        f.confidence,
        f.train_end
    from all_forecasts as f
    left join targets as t
        on t.ticker = f.ticker and t.date = f.asof_date
)

select * from final
