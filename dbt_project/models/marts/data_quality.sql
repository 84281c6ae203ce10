-- The data-quality report: one row per (finding, source, ticker, check). Quarantined rows by
-- reason, the latest ingest's other findings, and sessions where sources disagree.
with quarantined as (
    select * from {{ ref('stg_quarantine') }}
),

reported as (
    select * from {{ ref('stg_ingest_report') }}
),

conflicts as (
    select * from {{ ref('int_source_conflicts') }}
),

quarantine_summary as (
    select
        'quarantined' as finding,
        source,
        ticker,
        reason as check_name,
        count(*) as n_rows,
        min(date) as first_date,
        max(date) as last_date,
        any_value(detail) as detail
    from quarantined
    group by source, ticker, reason
),

report_summary as (
    select
        'reported' as finding,
        source,
        ticker,
        check_name,
        count as n_rows,
        cast(null as date) as first_date,
        cast(null as date) as last_date,
        detail
    from reported
),

conflict_summary as (
    select
        'source_disagreement' as finding,
        chosen_source as source,
        ticker,
        'source_disagreement' as check_name,
        count(*) as n_rows,
        min(date) as first_date,
        max(date) as last_date,
        'sources ' || any_value(sources) || ' differ by up to '
        || cast(round(100 * max(relative_difference), 4) as varchar) || ' %; precedence kept ' || chosen_source
        as detail
    from conflicts
    group by chosen_source, ticker
),

final as (
    select * from quarantine_summary
    union all
    select * from report_summary
    union all
    select * from conflict_summary
)

select * from final
