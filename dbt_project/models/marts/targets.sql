-- Forward-looking labels: the only model that reads the future. A target dated t spans
-- the sessions t+1 .. t+h and is NULL until session t+h exists.
{% set horizons = [1, 5, 21, 63] %}
with returns as (
    select * from {{ ref('int_returns') }}
),

features as (
    select ticker, date, realized_vol_21 from {{ ref('features') }}
),

forward as (
    select
        returns.ticker,
        returns.date,
        features.realized_vol_21 / sqrt(252) as daily_vol_21,
        {% for h in horizons %}
        {{ fwd_return('returns.adj_close', h) }} as fwd_return_{{ h }}d{{ "," if not loop.last }}
        {% endfor %}
    from returns
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

select * from final
