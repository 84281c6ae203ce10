-- Distribution and dependence of daily log returns over 63 sessions.
{% set bounds = refresh_bounds([ref('int_returns')], lookback=64) %}
with bounds as (
    {{ bounds.sql }}
),

returns as (
    select * from {{ ref('int_returns') }} as returns
    {{ incremental_input('returns', bounds) }}
),

inputs as (
    select ticker, date, log_return, {{ lag_sessions('log_return', 1) }} as log_return_lag_1
    from returns
),

final as (
    select
        ticker,
        date,
        -- a window of constant returns (quantised early prices) has no correlation or shape: NULL
        {{ finite_or_null(rolling('corr', 'log_return, log_return_lag_1', 63, count_expr='log_return * log_return_lag_1')) }} as autocorr_1_63,
        {{ finite_or_null(rolling('skewness', 'log_return', 63)) }} as skew_63,
        {{ finite_or_null(rolling('kurtosis', 'log_return', 63)) }} as kurtosis_63
    from inputs
)

{{ select_refreshed_rows('final', bounds) }}
