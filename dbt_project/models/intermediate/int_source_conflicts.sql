-- Sessions that two or more sources carry with adjusted closes more than 1 bp apart: which
-- source precedence chose (the one stg_prices keeps) and how far apart they are.
with loads as (
    select * from {{ ref('stg_price_loads') }}
),

ranked as (
    select
        ticker,
        date,
        source,
        adj_close,
        {{ source_rank('source') }} as source_rank,
        count(*) over (partition by ticker, date) as n_sources
    from loads
    where adj_close > 0
),

final as (
    select
        ticker,
        date,
        n_sources,
        arg_min(source, source_rank) as chosen_source,
        string_agg(source, ',' order by source_rank) as sources,
        max(adj_close) / min(adj_close) - 1 as relative_difference
    from ranked
    where n_sources > 1
    group by ticker, date, n_sources
    having max(adj_close) / min(adj_close) - 1 > 1e-4
)

select * from final
