-- Macro series in decimals: percent units are divided by 100, index levels kept.
with source as (
    select * from {{ source('raw', 'macro') }}
),

final as (
    select
        series_id,
        cast(date as date) as date,
        case when unit like 'percent%' then cast(value as double) / 100.0 else cast(value as double) end as value,
        replace(unit, 'percent', 'decimal') as unit,
        source
    from source
)

select * from final
