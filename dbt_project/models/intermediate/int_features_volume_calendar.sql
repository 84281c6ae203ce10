-- Volume features (NULL where the source has no volume) and calendar features, which
-- depend on the date alone and are known in advance.
{% set bounds = refresh_bounds([ref('int_returns')], lookback=45) %}
with bounds as (
    {{ bounds.sql }}
),

returns as (
    select * from {{ ref('int_returns') }} as returns
    {{ incremental_input('returns', bounds) }}
),

windows as (
    select
        ticker,
        date,
        volume,
        close * volume as dollar_volume,
        {{ rolling('avg', 'volume', 21) }} as volume_mean_21,
        {{ rolling('stddev_samp', 'volume', 21) }} as volume_sd_21,
        {{ rolling('avg', 'close * volume', 21) }} as dollar_volume_21
    from returns
),

calendar as (
    select * from {{ ref('int_calendar') }}
),

session_of_month as (
    select
        ticker,
        date,
        row_number() over (partition by ticker, year(date), month(date) order by date) as session_of_month
    from returns
),

final as (
    select
        windows.ticker,
        windows.date,
        case when windows.volume_sd_21 > 0 then (windows.volume - windows.volume_mean_21) / windows.volume_sd_21 end as volume_zscore_21,
        windows.dollar_volume,
        windows.dollar_volume_21,
        calendar.day_of_week,
        calendar.month,
        session_of_month.session_of_month,
        session_of_month.session_of_month <= 3 or windows.date >= calendar.last_weekday_of_month as turn_of_month,
        calendar.days_to_holiday,
        calendar.days_since_holiday,
        calendar.pre_holiday,
        calendar.post_holiday
    from windows
    inner join session_of_month on session_of_month.ticker = windows.ticker and session_of_month.date = windows.date
    inner join calendar on calendar.date = windows.date
)

{{ select_refreshed_rows('final', bounds) }}
