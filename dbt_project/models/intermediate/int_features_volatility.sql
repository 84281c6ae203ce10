-- Volatility features: realised (close-to-close), downside, range-based (OHLC only),
-- drawdown from the running peak. Annualised with sqrt(252).
{% set bounds = refresh_bounds([ref('int_returns')], lookback=63) %}
with bounds as (
    {{ bounds.sql }}
),

returns as (
    select * from {{ ref('int_returns') }} as returns
    {{ incremental_input('returns', bounds) }}
),

{% if bounds.incremental %}
peak_seeds as (
    -- the running peak is over the whole history: carry the stored one into the recomputed range
    select stored.ticker, max(stored.running_peak) as seed_peak
    from {{ this }} as stored
    semi join bounds on bounds.ticker = stored.ticker and stored.date < bounds.from_date
    group by stored.ticker
),

{% endif %}
inputs as (
    select
        ticker,
        date,
        adj_close,
        log_return,
        case when log_return < 0 then log_return when log_return >= 0 then 0 end as downside_return,  -- least() would turn NULL into 0
        case when high > 0 and low > 0 then ln(high / low) end as log_hl,
        case when close > 0 and open > 0 then ln(close / open) end as log_co
    from returns
),

windows as (
    select
        ticker,
        date,
        adj_close,
        {{ rolling('stddev_samp', 'log_return', 10) }} as vol_10,
        {{ rolling('stddev_samp', 'log_return', 21) }} as vol_21,
        {{ rolling('stddev_samp', 'log_return', 63) }} as vol_63,
        {{ rolling('avg', 'downside_return * downside_return', 21, count_expr='downside_return') }} as downside_ms_21,
        {{ rolling('avg', 'log_hl * log_hl', 21, count_expr='log_hl') }} as hl_ms_21,
        {{ rolling('avg', '0.5 * log_hl * log_hl - (2 * ln(2) - 1) * log_co * log_co', 21, count_expr='log_hl * log_co') }} as gk_ms_21,
        max(adj_close) over (partition by ticker order by date rows between unbounded preceding and current row) as slice_peak
    from inputs
),

peaks as (
    select
        windows.*,
        {% if bounds.incremental %}
        greatest(peak_seeds.seed_peak, windows.slice_peak) as running_peak  -- greatest() skips a NULL seed
        {% else %}
        windows.slice_peak as running_peak
        {% endif %}
    from windows
    {% if bounds.incremental %}
    left join peak_seeds on peak_seeds.ticker = windows.ticker
    {% endif %}
),

final as (
    select
        ticker,
        date,
        vol_10 * sqrt(252) as realized_vol_10,
        vol_21 * sqrt(252) as realized_vol_21,
        vol_63 * sqrt(252) as realized_vol_63,
        case when vol_63 > 0 then vol_10 / vol_63 end as volatility_ratio_10_63,
        sqrt(downside_ms_21 * 252) as downside_vol_21,
        sqrt(hl_ms_21 / (4 * ln(2)) * 252) as parkinson_vol_21,
        sqrt(gk_ms_21 * 252) as garman_klass_vol_21,  -- >= 0: |ln(C/O)| <= ln(H/L) when OHLC are consistent
        adj_close / running_peak - 1 as drawdown,
        running_peak
    from peaks
)

{{ select_refreshed_rows('final', bounds) }}
