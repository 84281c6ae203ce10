-- Daily simple and log returns from adjusted closes, per ticker, in session order.
with prices as (
    select * from {{ ref('stg_prices') }}
),

final as (
    select
        ticker,
        date,
        adj_close,
        adj_close / lag(adj_close) over (partition by ticker order by date) - 1 as simple_return,
        ln(adj_close / lag(adj_close) over (partition by ticker order by date)) as log_return
    from prices
    where adj_close > 0
)

select * from final
