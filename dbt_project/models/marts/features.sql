-- Point-in-time features: every value dated t uses sessions up to and including t.
with returns as (
    select * from {{ ref('int_returns') }}
),

windows as (
    select
        ticker,
        date,
        adj_close,
        simple_return,
        log_return,
        lag(adj_close, 1) over (partition by ticker order by date) as close_lag_1,
        lag(adj_close, 5) over (partition by ticker order by date) as close_lag_5,
        lag(adj_close, 20) over (partition by ticker order by date) as close_lag_20,
        lag(adj_close, 21) over (partition by ticker order by date) as close_lag_21,
        {{ rolling('avg', 'adj_close', 20) }} as sma_20,
        {{ rolling('stddev_samp', 'adj_close', 20) }} as sd_20,
        {{ rolling('stddev_samp', 'log_return', 10) }} as vol_10,
        {{ rolling('stddev_samp', 'log_return', 21) }} as vol_21,
        {{ rolling('stddev_samp', 'log_return', 63) }} as vol_63
    from returns
),

final as (
    select
        ticker,
        date,
        simple_return as ret_1d,
        adj_close / close_lag_5 - 1 as ret_5d,
        adj_close / close_lag_21 - 1 as ret_21d,
        close_lag_1 / close_lag_20 - 1 as momentum_1_20,
        case when sd_20 > 0 then (adj_close - (sma_20 - 2 * sd_20)) / (4 * sd_20) end as bollinger_position,
        case when vol_63 > 0 then vol_10 / vol_63 end as volatility_ratio_10_63,
        vol_21 * sqrt(252) as realized_vol_21
    from windows
)

select * from final
