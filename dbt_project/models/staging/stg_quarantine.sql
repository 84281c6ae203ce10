-- Rows the ingest's data-quality wall refused, typed; the row itself stays JSON text.
with source as (
    select * from {{ source('raw', 'quarantine') }}
),

final as (
    select
        upper(trim(ticker)) as ticker,
        cast(date as date) as date,
        source,
        reason,
        detail,
        row_json,
        cast(quarantined_at as timestamp) as quarantined_at
    from source
)

select * from final
