-- The latest ingest's findings per source that are not rows (missing sessions, silent tickers, repairs).
with source as (
    select * from {{ source('raw', 'ingest_report') }}
),

final as (
    select
        upper(trim(ticker)) as ticker,
        source,
        check_name,
        cast(count as bigint) as count,
        detail,
        cast(reported_at as timestamp) as reported_at
    from source
)

select * from final
