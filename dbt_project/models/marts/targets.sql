-- Forward-looking labels (the future itself is read once, in int_forward_returns). A target dated t spans
-- the sessions t+1 .. t+h and is NULL until session t+h exists.
{% set horizons = var('target_horizons') %}
{% set bounds = refresh_bounds([ref('int_forward_returns'), ref('features')]) %}
with bounds as (
    {{ bounds.sql }}
),

forward_returns as (
    select * from {{ ref('int_forward_returns') }} as forward_returns
    {{ incremental_input('forward_returns', bounds) }}
),

features as (
    select ticker, date, realized_vol_21 from {{ ref('features') }} as features
    {{ incremental_input('features', bounds) }}
),

pivoted as (
    select
        ticker,
        date,
        {% for h in horizons %}
        max(case when horizon = {{ h }} then fwd_return end) as fwd_return_{{ h }}d{{ "," if not loop.last }}
        {% endfor %}
    from forward_returns
    group by ticker, date
),

forward as (
    select
        pivoted.*,
        features.realized_vol_21 / sqrt(252) as daily_vol_21
    from pivoted
    left join features using (ticker, date)
),

final as (
    select
        ticker,
        date,
        {% for h in horizons %}
        fwd_return_{{ h }}d,
        case when daily_vol_21 > 0 then fwd_return_{{ h }}d / (daily_vol_21 * sqrt({{ h }})) end as fwd_risk_adj_return_{{ h }}d,
        case when daily_vol_21 > 0 and fwd_return_{{ h }}d is not null
             then abs(fwd_return_{{ h }}d) > {{ var('significant_move_k') }} * daily_vol_21 * sqrt({{ h }}) end as significant_move_{{ h }}d,
        cast(sign(fwd_return_{{ h }}d) as integer) as fwd_direction_{{ h }}d{{ "," if not loop.last }}
        {% endfor %}
    from forward
)

{{ select_refreshed_rows('final', bounds) }}
