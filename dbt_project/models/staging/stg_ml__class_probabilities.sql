{{ config(tags=['post_forecast']) }}

with source as (
    select * from {{ source('ml', 'class_probabilities') }}
),

final as (
    select
        cast(model as varchar) as model,
        cast(ticker as varchar) as ticker,
        cast(date as date) as asof_date,
        cast(target as varchar) as target,
        cast(horizon as integer) as horizon,
        cast(probability as double) as probability,
        cast(base_rate as double) as base_rate,
        cast(train_start as date) as train_start,
        cast(train_end as date) as train_end
    from source
)

select * from final
