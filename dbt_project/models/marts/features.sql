-- Point-in-time features per (ticker, date): a row dated t uses only sessions up to and
-- including t. Windows count calendar sessions; a window that is not full, or that
-- holds a missing session, gives NULL.
-- Incremental across tickers: ranks compare tickers on a date, and market features join every ticker.
{% set bounds = refresh_bounds(
    [ref('int_returns'), ref('int_features_trend'), ref('int_features_volatility'), ref('int_features_statistical'), ref('int_features_variance_ratio'), ref('int_features_smoothed'), ref('int_features_volume_calendar')],
    lookback=252,
    across_tickers=true,
) %}
with bounds as (
    {{ bounds.sql }}
),

returns as (
    select * from {{ ref('int_returns') }} as returns
    {{ incremental_input('returns', bounds) }}
),

trend as (
    select * from {{ ref('int_features_trend') }} as trend
    {{ incremental_input('trend', bounds) }}
),

volatility as (
    select * from {{ ref('int_features_volatility') }} as volatility
    {{ incremental_input('volatility', bounds) }}
),

statistical as (
    select * from {{ ref('int_features_statistical') }} as statistical
    {{ incremental_input('statistical', bounds) }}
),

volume_calendar as (
    select * from {{ ref('int_features_volume_calendar') }} as volume_calendar
    {{ incremental_input('volume_calendar', bounds) }}
),

smoothed as (
    select * from {{ ref('int_features_smoothed') }} as smoothed
    {{ incremental_input('smoothed', bounds) }}
),

variance_ratio as (
    select * from {{ ref('int_features_variance_ratio') }} as variance_ratio
    {{ incremental_input('variance_ratio', bounds) }}
),

market as (
    select * from {{ ref('int_market') }} as market
    {{ incremental_input('market', bounds) }}
),

joined as (
    select
        returns.ticker,
        returns.date,
        returns.has_price,
        returns.log_return,
        trend.* exclude (ticker, date, refreshed_at),
        volatility.* exclude (ticker, date, refreshed_at, running_peak),
        statistical.* exclude (ticker, date, refreshed_at),
        variance_ratio.* exclude (ticker, date, refreshed_at),
        smoothed.* exclude (ticker, date, refreshed_at),
        volume_calendar.* exclude (ticker, date, refreshed_at),
        market.market_return_1d,
        market.market_vol_21,
        market.market_log_return
    from returns
    left join trend on trend.ticker = returns.ticker and trend.date = returns.date
    left join volatility on volatility.ticker = returns.ticker and volatility.date = returns.date
    left join statistical on statistical.ticker = returns.ticker and statistical.date = returns.date
    left join variance_ratio on variance_ratio.ticker = returns.ticker and variance_ratio.date = returns.date
    left join smoothed on smoothed.ticker = returns.ticker and smoothed.date = returns.date
    left join volume_calendar on volume_calendar.ticker = returns.ticker and volume_calendar.date = returns.date
    left join market on market.date = returns.date
),

with_beta as (
    select
        *,
        {{ finite_or_null(rolling('regr_slope', 'log_return, market_log_return', 63, count_expr='log_return * market_log_return')) }} as beta_63,
        -- share of the trailing 252 sessions' 21-session volatility at or below today's
        case when count(realized_vol_21) over trailing_year = 252 then
            list_count(list_filter(list(realized_vol_21) over trailing_year, lambda v: v <= realized_vol_21)) / 252.0
        end as vol_regime_pct_252
    from joined
    window trailing_year as (partition by ticker order by date rows between 251 preceding and current row)
),

final as (
    select
        * exclude (log_return, market_log_return),
        -- cross-sectional percentile ranks among the stocks (benchmark excluded) on each date
        {% for col in ['ret_21d', 'ret_252d', 'realized_vol_21'] %}
        case when {{ col }} is not null and ticker <> '{{ var("benchmark_ticker") }}' then
            percent_rank() over (
                partition by date, {{ col }} is null, ticker = '{{ var("benchmark_ticker") }}' order by {{ col }}
            )
        end as xs_rank_{{ col }}{{ "," if not loop.last }}
        {% endfor %}
    from with_beta
)

{{ select_refreshed_rows('final', bounds) }}
