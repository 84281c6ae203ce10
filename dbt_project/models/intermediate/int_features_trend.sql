-- Momentum, mean-reversion and trend features from adjusted closes (close-only is enough).
{% set momentum_windows = [1, 5, 21, 63, 126, 252] %}
{% set bounds = refresh_bounds([ref('int_returns')], lookback=252) %}
with bounds as (
    {{ bounds.sql }}
),

returns as (
    select * from {{ ref('int_returns') }} as returns
    {{ incremental_input('returns', bounds) }}
),

windows as (
    select
        ticker,
        date,
        adj_close,
        {% for n in momentum_windows %}
        {{ lag_sessions('adj_close', n) }} as close_lag_{{ n }},
        {% endfor %}
        {{ lag_sessions('adj_close', 20) }} as close_lag_20,
        {{ rolling('avg', 'adj_close', 20) }} as sma_20,
        {{ rolling('stddev_samp', 'adj_close', 20) }} as sd_20,
        {{ rolling('avg', 'adj_close', 50) }} as sma_50,
        {{ rolling('avg', 'adj_close', 200) }} as sma_200,
        {{ rolling('max', 'adj_close', 252) }} as high_252,
        {{ rolling('min', 'adj_close', 252) }} as low_252,
        {% for k in range(1, 6) %}
        {{ lag_sessions('simple_return', k) }} as ret_lag_{{ k }}{{ "," if not loop.last }}
        {% endfor %}
    from returns
),

final as (
    select
        ticker,
        date,
        {% for n in momentum_windows %}
        adj_close / close_lag_{{ n }} - 1 as ret_{{ n }}d,
        {% endfor %}
        close_lag_1 / close_lag_20 - 1 as momentum_1_20,
        case when sd_20 > 0 then (adj_close - (sma_20 - 2 * sd_20)) / (4 * sd_20) end as bollinger_position,
        adj_close / high_252 - 1 as dist_52w_high,
        adj_close / low_252 - 1 as dist_52w_low,
        case when sma_50 > sma_200 then 1 when sma_50 < sma_200 then -1 when sma_50 = sma_200 then 0 end as trend_regime,
        {% for k in range(1, 6) %}
        ret_lag_{{ k }}{{ "," if not loop.last }}
        {% endfor %}
    from windows
)

{{ select_refreshed_rows('final', bounds) }}
