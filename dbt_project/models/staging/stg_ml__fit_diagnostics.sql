{{ config(tags=['post_forecast']) }}

with source as (
    select * from {{ source('ml', 'fit_diagnostics') }}
),

final as (
    select
        cast(fit_id as varchar) as fit_id,
        cast(model as varchar) as model,
        cast(ticker as varchar) as ticker,
        cast(train_start as date) as train_start,
        cast(train_end as date) as train_end,
        cast(diagnostic as varchar) as diagnostic,
        cast(value as double) as value
    from source
)

select * from final
