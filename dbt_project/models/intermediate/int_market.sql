-- Market-level series from the benchmark index (var benchmark_ticker), one row per session.
with returns as (
    select * from {{ ref('int_returns') }}
    where ticker = '{{ var("benchmark_ticker") }}'
),

volatility as (
    select * from {{ ref('int_features_volatility') }}
    where ticker = '{{ var("benchmark_ticker") }}'
),

final as (
    select
        returns.date,
        returns.simple_return as market_return_1d,
        returns.log_return as market_log_return,
        volatility.realized_vol_21 as market_vol_21
    from returns
    inner join volatility on volatility.date = returns.date
)

select * from final
