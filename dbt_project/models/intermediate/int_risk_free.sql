-- The cash rate per session: the Fama–French one-month T-bill return of the session's month
-- (decimal per month; set at the start of the month, so known on every session of it),
-- converted to a per-session rate at 252 sessions a year: (1 + rf_month)^(12 / 252) - 1.
-- Sessions of a month the source does not cover get NULL and rf_known = false: no fill.
with sessions as (
    select * from {{ ref('int_sessions') }}
),

risk_free as (
    select date as month_start, value as rf_month
    from {{ ref('stg_macro') }}
    where series_id = 'RF'
),

final as (
    select
        s.date,
        r.rf_month,
        pow(1.0 + r.rf_month, 12.0 / 252.0) - 1.0 as rf_daily,
        r.rf_month is not null as rf_known
    from sessions as s
    left join risk_free as r
        on r.month_start = date_trunc('month', s.date)
)

select * from final
