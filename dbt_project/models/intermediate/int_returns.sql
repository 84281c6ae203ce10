-- One row per ticker and calendar session between its first and last price, with the
-- prices (NULL on a missing session) and daily returns. A return is NULL when either
-- of its two sessions lacks a price, so a gap never becomes a silent multi-day return.
-- Incremental: per ticker, recomputes from the first session loaded since the last run
-- (or from the session after its last stored one, to fill grid rows for missing sessions).
-- depends_on: {{ ref('stg_price_loads') }}
{% set incremental = pmx_incremental() %}
{% set first_from = none %}
{% if incremental %}
    {% set stored = run_query("select coalesce(max(ingested_at), timestamp '0001-01-01'), max(date) from " ~ this).rows[0] %}
    {% set bounds_sql %}
        with stored as (
            select ticker, max(date) as last_date from {{ this }} group by ticker
        ),

        changed as (
            select ticker, min(date) as changed_from
            from {{ ref('stg_price_loads') }}
            where ingested_at > cast('{{ stored[0] }}' as timestamp)
            group by ticker
        ),

        inserted_session as (
            -- a session new to the warehouse inside the stored history adds a grid row to every ticker
            select min(date) as date
            from {{ ref('int_sessions') }}
            where date <= date '{{ stored[1] }}'
                and date not in (select distinct date from {{ this }})
        ),

        restated as (
            select changed.ticker, least(changed.changed_from, stored.last_date + 1) as from_date
            from changed
            left join stored on stored.ticker = changed.ticker
            union all
            select stored.ticker, inserted_session.date
            from stored
            cross join inserted_session
            where stored.last_date >= inserted_session.date
        ),

        earliest as (
            select ticker, min(from_date) as from_date from restated group by ticker
        ),

        final as (
            -- input_from: the session before from_date, for the first return
            select
                earliest.ticker,
                earliest.from_date,
                coalesce(max(sessions.date), date '0001-01-01') as input_from
            from earliest
            left join {{ ref('int_sessions') }} as sessions on sessions.date < earliest.from_date
            group by earliest.ticker, earliest.from_date
        )

        select * from final
    {% endset %}
    {% set earliest = run_query("select min(input_from), min(from_date) from (" ~ bounds_sql ~ ")").rows[0] %}
    {% set first_input = earliest[0] or '9999-12-31' %}
    {% set first_from = none if earliest[1] is none else "date '" ~ earliest[1] ~ "'" %}
{% endif %}
with sessions as (
    select * from {{ ref('int_sessions') }}
),

{% if incremental %}
bounds as (
    {{ bounds_sql }}
),

{% endif %}
prices as (
    select * from {{ ref('stg_prices') }} as prices
    {% if incremental %}
    semi join bounds on bounds.ticker = prices.ticker and prices.date >= bounds.input_from
    where prices.date >= date '{{ first_input }}'
    {% endif %}
),

spans as (
    select ticker, min(date) as first_date, max(date) as last_date
    from prices
    group by ticker
),

grid as (
    select spans.ticker, sessions.date
    from spans
    inner join sessions on sessions.date between spans.first_date and spans.last_date
),

joined as (
    select
        grid.ticker,
        grid.date,
        prices.open,
        prices.high,
        prices.low,
        prices.close,
        case when prices.adj_close > 0 then prices.adj_close end as adj_close,
        prices.volume,
        prices.ingested_at
    from grid
    left join prices on prices.ticker = grid.ticker and prices.date = grid.date
),

final as (
    select
        ticker,
        date,
        open,
        high,
        low,
        close,
        adj_close,
        volume,
        adj_close is not null as has_price,
        adj_close / {{ lag_sessions('adj_close', 1) }} - 1 as simple_return,
        ln(adj_close / {{ lag_sessions('adj_close', 1) }}) as log_return,
        ingested_at
    from joined
)

{{ select_refreshed_rows('final', {'incremental': incremental, 'across_tickers': false, 'from_date': first_from}) }}
