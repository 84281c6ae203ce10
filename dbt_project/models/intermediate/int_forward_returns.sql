-- Forward simple returns in long form, one row per (ticker, date, horizon): the one place
-- the future is read. marts.targets pivots it; forecasts take their realised values from it.
{% set bounds = refresh_bounds([ref('int_returns')], reach_back=var('target_horizons') | max) %}
with bounds as (
    {{ bounds.sql }}
),

returns as (
    select * from {{ ref('int_returns') }} as returns
    {{ incremental_input('returns', bounds) }}
),

{% for h in var('target_horizons') %}
horizon_{{ h }} as (
    select ticker, date, {{ h }} as horizon, {{ fwd_return('adj_close', h) }} as fwd_return
    from returns
),

{% endfor %}
final as (
    {% for h in var('target_horizons') %}
    select * from horizon_{{ h }}{{ " union all" if not loop.last }}
    {% endfor %}
)

{{ select_refreshed_rows('final', bounds) }}
