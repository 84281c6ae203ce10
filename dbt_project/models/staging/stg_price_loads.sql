-- Every stored price row's key, adjusted close and load time, before source precedence: the
-- cheap way to ask which sessions exist, what was loaded since a given time, and where sources differ.
with source as (
    select * from {{ source('raw', 'prices') }}
),

final as (
    select
        upper(trim(ticker)) as ticker,
        cast(date as date) as date,
        source,
        cast(adj_close as double) as adj_close,
        cast(ingested_at as timestamp) as ingested_at
    from source
)

select * from final
