-- Calendar features per session date, known in advance from the date and the exchange's
-- published holiday rules.
with sessions as (
    select * from {{ ref('int_sessions') }}
),

holidays as (
    select cast(holiday_date as date) as holiday_date from {{ ref('int_market_holidays') }}
),

nearest as (
    select
        sessions.date,
        min(case when holidays.holiday_date > sessions.date then holidays.holiday_date end) as next_holiday,
        max(case when holidays.holiday_date < sessions.date then holidays.holiday_date end) as previous_holiday
    from sessions
    cross join holidays
    group by sessions.date
),

final as (
    select
        date,
        isodow(date) as day_of_week,
        month(date) as month,
        date_diff('day', date, next_holiday) as days_to_holiday,
        date_diff('day', previous_holiday, date) as days_since_holiday,
        -- the next weekday is a holiday: the last session before the market closes for it
        next_holiday = date + cast(case isodow(date) when 5 then 3 when 6 then 2 else 1 end as integer) as pre_holiday,
        previous_holiday = date - cast(case isodow(date) when 1 then 3 when 7 then 2 else 1 end as integer) as post_holiday,
        last_day(date) - cast(case isodow(last_day(date)) when 6 then 1 when 7 then 2 else 0 end as integer)
            as last_weekday_of_month
    from nearest
)

select * from final
