{{ config(tags=['post_forecast']) }}
-- Every out-of-sample forecast, single models and the ensemble, with the realised value
-- attached once the target session exists. A view (dbt_project.yml): it always shows the forecast
-- tables and the returns of the state it is read at, and stores nothing of its own.
with base_forecasts as (
    select * from {{ ref('stg_ml__base_forecasts') }}
),

ensemble_forecasts as (
    select * from {{ ref('stg_ml__ensemble_forecasts') }}
),

forward_returns as (
    select * from {{ ref('int_forward_returns') }}
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
        r.fwd_return as y_true,
        f.y_std,
        f.confidence,
        f.train_end,
        f.fit_id
    from all_forecasts as f
    left join forward_returns as r
        on r.ticker = f.ticker and r.date = f.asof_date and r.horizon = f.horizon
)

select * from final
