with prices as (
    select * from {{ ref('stg_prices') }}
),

final as (
    select ticker, date, open, high, low, close, adj_close, volume, source
    from prices
)

select * from final
