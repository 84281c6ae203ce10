-- One row per (ticker, date): where several sources carry a session, the richer one
-- wins (user files, then OHLCV, then close-only).
with source as (
    select * from {{ source('raw', 'prices') }}
),

typed as (
    -- typed first, so that a filter on ticker or date reaches the scan through the ranking
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
        cast(ingested_at as timestamp) as ingested_at
    from source
),

ranked as (
    select
        *,
        row_number() over (
            partition by ticker, date
            order by {{ source_rank('source') }}
        ) as source_rank,
        -- the latest load of any source for the session: a change to any of them is a change
        max(ingested_at) over (partition by ticker, date) as last_ingested_at
    from typed
),

final as (
    select ticker, date, open, high, low, close, adj_close, volume, source, last_ingested_at as ingested_at
    from ranked
    where source_rank = 1
)

select * from final
