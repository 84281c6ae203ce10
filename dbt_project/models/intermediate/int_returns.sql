-- One row per ticker and calendar session between its first and last price, with the
-- prices (NULL on a missing session) and daily returns. A return is NULL when either
-- of its two sessions lacks a price, so a gap never becomes a silent multi-day return.
with prices as (
    select * from {{ ref('stg_prices') }}
),

sessions as (
    select * from {{ ref('int_sessions') }}
),

spans as (
    select ticker, min(date) as first_date, max(date) as last_date
    from prices
    group by ticker
),

grid as (
    select spans.ticker, sessions.date
    from spans
    inner join sessions on sessions.date between spans.first_date and spans.last_date
),

joined as (
    select
        grid.ticker,
        grid.date,
        prices.open,
        prices.high,
        prices.low,
        prices.close,
        case when prices.adj_close > 0 then prices.adj_close end as adj_close,
        prices.volume
    from grid
    left join prices on prices.ticker = grid.ticker and prices.date = grid.date
),

final as (
    select
        ticker,
        date,
        open,
        high,
        low,
        close,
        adj_close,
        volume,
        adj_close is not null as has_price,
        adj_close / {{ lag_sessions('adj_close', 1) }} - 1 as simple_return,
        ln(adj_close / {{ lag_sessions('adj_close', 1) }}) as log_return
    from joined
)

select * from final
