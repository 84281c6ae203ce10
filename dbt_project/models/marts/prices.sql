-- Prices per (ticker, date) after source precedence. Incremental: rows loaded since the
-- last run replace their stored versions.
{% set incremental = pmx_incremental() %}
{% if incremental %}
    {% set watermark = run_query("select coalesce(max(ingested_at), timestamp '0001-01-01') from " ~ this).rows[0][0] %}
{% endif %}
with prices as (
    select * from {{ ref('stg_prices') }}
    {% if incremental %}
    where ingested_at > cast('{{ watermark }}' as timestamp)
    {% endif %}
),

final as (
    select ticker, date, open, high, low, close, adj_close, volume, source, ingested_at
    from prices
)

{{ select_refreshed_rows('final', {'incremental': false}) }}
