-- Every stored price row's key and load time, before source precedence: the cheap way to
-- ask which sessions exist and what was loaded since a given time.
with source as (
    select * from {{ source('raw', 'prices') }}
),

final as (
    select
        upper(trim(ticker)) as ticker,
        cast(date as date) as date,
        source,
        cast(ingested_at as timestamp) as ingested_at
    from source
)

select * from final
