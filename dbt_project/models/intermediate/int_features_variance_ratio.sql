-- Lo–MacKinlay variance ratios VR(q), q = 2, 5, 10, over the last 252 daily log returns
-- (overlapping q-period returns, de-biased variances, heteroskedasticity-robust z), and
-- a Hurst exponent over the last 100 returns by the aggregated-variance method.
-- Every sum is a trailing window sum, so the formulas of arch.unitroot.VarianceRatio
-- are expanded around the window mean mu (see the YAML for the algebra).
{% set W = 252 %}
{% set HW = 100 %}
{% set vr_lags = [2, 5, 10] %}
{% set hurst_lags = [2, 4, 8, 16] %}
{% set all_lags = (vr_lags + hurst_lags) | unique | list %}
{% set bounds = refresh_bounds([ref('int_returns')], lookback=252) %}
with bounds as (
    {{ bounds.sql }}
),

returns as (
    select * from {{ ref('int_returns') }} as returns
    {{ incremental_input('returns', bounds) }}
),

inputs as (
    select
        ticker,
        date,
        log_return as r,
        {% for q in all_lags %}
        ln(adj_close / {{ lag_sessions('adj_close', q) }}) as x_{{ q }},
        {% endfor %}
        {% for k in range(1, vr_lags | max) %}
        {{ lag_sessions('log_return', k) }} as r_lag_{{ k }}{{ "," if not loop.last }}
        {% endfor %}
    from returns
),

sums as (
    select
        ticker,
        date,
        {% for w in [W, HW] %}
        count(r) over (partition by ticker order by date rows between {{ w - 1 }} preceding and current row) as n_{{ w }},
        {{ window_sum('r', w) }} as s1_{{ w }},
        {{ window_sum('r * r', w) }} as s2_{{ w }},
        {% endfor %}
        {% for q in vr_lags %}
        {{ window_sum('x_' ~ q, W - q + 1) }} as sq1_{{ q }}_{{ W }},
        {{ window_sum('x_' ~ q ~ ' * x_' ~ q, W - q + 1) }} as sq2_{{ q }}_{{ W }},
        {% endfor %}
        {% for q in hurst_lags %}
        {{ window_sum('x_' ~ q, HW - q + 1) }} as sq1_{{ q }}_{{ HW }},
        {{ window_sum('x_' ~ q ~ ' * x_' ~ q, HW - q + 1) }} as sq2_{{ q }}_{{ HW }},
        {% endfor %}
        {% for k in range(1, vr_lags | max) %}
        {{ window_sum('r * r * r_lag_' ~ k ~ ' * r_lag_' ~ k, W - k) }} as a_{{ k }},
        {{ window_sum('r * r_lag_' ~ k ~ ' * (r + r_lag_' ~ k ~ ')', W - k) }} as b_{{ k }},
        {{ window_sum('r * r + r_lag_' ~ k ~ ' * r_lag_' ~ k, W - k) }} as c_{{ k }},
        {{ window_sum('r * r_lag_' ~ k, W - k) }} as d_{{ k }},
        {{ window_sum('r + r_lag_' ~ k, W - k) }} as e_{{ k }}{{ "," if not loop.last }}
        {% endfor %}
    from inputs
),

moments as (
    select
        *,
        {% for w in [W, HW] %}
        s1_{{ w }} / {{ w }} as mu_{{ w }},
        -- sum of squared deviations from the window mean
        s2_{{ w }} - s1_{{ w }} * s1_{{ w }} / {{ w }} as ss_{{ w }}{{ "," if not loop.last }}
        {% endfor %}
    from sums
),

ratios as (
    select
        *,
        {% for q in vr_lags %}
        ((sq2_{{ q }}_{{ W }} - 2 * {{ q }} * mu_{{ W }} * sq1_{{ q }}_{{ W }} + {{ W - q + 1 }} * {{ q * q }} * mu_{{ W }} * mu_{{ W }})
            / ({{ q }} * {{ W - q + 1 }} * (1 - {{ q }} / {{ W }})))
            / nullif(ss_{{ W }} / {{ W - 1 }}, 0) as vr_raw_{{ q }},
        {% endfor %}
        {% for q in hurst_lags %}
        ((sq2_{{ q }}_{{ HW }} - 2 * {{ q }} * mu_{{ HW }} * sq1_{{ q }}_{{ HW }} + {{ HW - q + 1 }} * {{ q * q }} * mu_{{ HW }} * mu_{{ HW }})
            / ({{ q }} * {{ HW - q + 1 }} * (1 - {{ q }} / {{ HW }})))
            / nullif(ss_{{ HW }} / {{ HW - 1 }}, 0) as hvr_{{ q }},
        {% endfor %}
        {% for k in range(1, vr_lags | max) %}
        -- delta_k = W * sum (r_t - mu)^2 (r_{t-k} - mu)^2 / (sum (r_t - mu)^2)^2
        {{ W }} * (a_{{ k }} - 2 * mu_{{ W }} * b_{{ k }} + mu_{{ W }} * mu_{{ W }} * (c_{{ k }} + 4 * d_{{ k }})
              - 2 * mu_{{ W }} * mu_{{ W }} * mu_{{ W }} * e_{{ k }} + {{ W - k }} * mu_{{ W }} * mu_{{ W }} * mu_{{ W }} * mu_{{ W }})
            / nullif(ss_{{ W }} * ss_{{ W }}, 0) as delta_{{ k }}{{ "," if not loop.last }}
        {% endfor %}
    from moments
),

final as (
    select
        ticker,
        date,
        {% for q in vr_lags %}
        case when n_{{ W }} = {{ W }} then vr_raw_{{ q }} end as variance_ratio_{{ q }},
        case when n_{{ W }} = {{ W }} then
            sqrt({{ W }}) * (vr_raw_{{ q }} - 1) / sqrt(nullif(
                {% for k in range(1, q) %}4 * power(1 - {{ k }} / {{ q }}, 2) * delta_{{ k }}{{ " + " if not loop.last }}{% endfor %}, 0))
        end as variance_ratio_z_{{ q }},
        {% endfor %}
        -- aggregated variance: Var(q-period return) ~ q^(2H), so H = 1/2 + slope(ln VR(q) on ln q) / 2
        -- over q = 1, 2, 4, 8, 16 (VR(1) = 1); the log2 q deviations from their mean are -2..2.
        case when n_{{ HW }} = {{ HW }} and least({% for q in hurst_lags %}hvr_{{ q }}{{ ", " if not loop.last }}{% endfor %}) > 0 then
            0.5 + 0.5 * ({% for q in hurst_lags %}{{ loop.index - 2 }} * ln(hvr_{{ q }}){{ " + " if not loop.last }}{% endfor %}) / (10 * ln(2))
        end as hurst_100
    from ratios
)

{{ select_refreshed_rows('final', bounds) }}
