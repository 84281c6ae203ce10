{{ config(meta={'dagster': {'ref': {'name': 'targets'}}}) }}
-- The 1-session target dated t is the 1-session feature dated at the next session:
-- targets look forward exactly one step further than features, no more, no less.
with targets as (
    select ticker, date, fwd_return_1d from {{ ref('targets') }}
),

features as (
    select
        ticker,
        date,
        ret_1d,
        lag(date) over (partition by ticker order by date) as previous_date
    from {{ ref('features') }}
),

final as (
    select targets.ticker, targets.date, targets.fwd_return_1d, features.ret_1d
    from targets
    inner join features
        on features.ticker = targets.ticker and features.previous_date = targets.date
    where abs(targets.fwd_return_1d - features.ret_1d) > 1e-12
       or (targets.fwd_return_1d is null) <> (features.ret_1d is null)
)

select * from final
