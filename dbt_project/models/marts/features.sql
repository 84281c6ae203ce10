-- Point-in-time features per (ticker, date): a row dated t uses only sessions up to and
-- including t. Windows count calendar sessions; a window that is not full, or that
-- holds a missing session, gives NULL.
with returns as (
    select * from {{ ref('int_returns') }}
),

trend as (
    select * from {{ ref('int_features_trend') }}
),

volatility as (
    select * from {{ ref('int_features_volatility') }}
),

statistical as (
    select * from {{ ref('int_features_statistical') }}
),

volume_calendar as (
    select * from {{ ref('int_features_volume_calendar') }}
),

smoothed as (
    select * from {{ ref('int_features_smoothed') }}
),

variance_ratio as (
    select * from {{ ref('int_features_variance_ratio') }}
),

market as (
    select * from {{ ref('int_market') }}
),

joined as (
    select
        returns.ticker,
        returns.date,
        returns.has_price,
        returns.log_return,
        trend.* exclude (ticker, date),
        volatility.* exclude (ticker, date),
        statistical.* exclude (ticker, date),
        variance_ratio.* exclude (ticker, date),
        smoothed.* exclude (ticker, date),
        volume_calendar.* exclude (ticker, date),
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

select * from final
