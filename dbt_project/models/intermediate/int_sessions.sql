-- The trading calendar: every date on which any ticker has a price. Per ticker, a
-- calendar session without a price is a missing session, not a skipped one.
with loads as (
    select * from {{ ref('stg_price_loads') }}
),

dates as (
    select distinct date from loads
),

final as (
    -- session_index numbers sessions 1, 2, ...: incremental models count lookbacks with it
    select date, row_number() over (order by date) as session_index
    from dates
)

select * from final
