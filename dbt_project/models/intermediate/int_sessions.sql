-- The trading calendar: every date on which any ticker has a price. Per ticker, a
-- calendar session without a price is a missing session, not a skipped one.
with prices as (
    select * from {{ ref('stg_prices') }}
),

final as (
    select distinct date from prices
)

select * from final
