-- One row per (ticker, date): where several sources carry a session, the richer one
-- wins (user files, then OHLCV, then close-only).
with source as (
    select * from {{ source('raw', 'prices') }}
),

ranked as (
    select
        upper(trim(ticker)) as ticker,
        cast(date as date) as date,
        cast(open as double) as open,
        cast(high as double) as high,
        cast(low as double) as low,
        cast(close as double) as close,
        cast(adj_close as double) as adj_close,
        cast(volume as double) as volume,
        source,
        row_number() over (
            partition by upper(trim(ticker)), cast(date as date)
            order by case source when 'csv' then 1 when 'arch' then 2 when 'skfolio' then 3 else 9 end
        ) as source_rank
    from source
),

final as (
    select ticker, date, open, high, low, close, adj_close, volume, source
    from ranked
    where source_rank = 1
)

select * from final
