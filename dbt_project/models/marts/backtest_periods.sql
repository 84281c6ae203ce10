{{ config(tags=['post_forecast', 'backtest']) }}
-- Every strategy's daily net returns (marts.backtest_daily, written by the backtest asset) broken down by
-- calendar year, by market regime (the HMM's most likely filtered regime of the session) and by stress
-- window (var stress_windows). Per period: sessions, compounded return, annualised volatility and Sharpe
-- ratio (sample standard deviation, 252 sessions a year, zero risk-free rate) and the max drawdown within
-- the period: the period's sessions compounded in date order from 1, the starting capital counting as a peak.
with daily as (
    select * from {{ source('marts', 'backtest_daily') }}
),

regime_probabilities as (
    select * from {{ source('ml', 'regime_probabilities') }}
),

stress_windows as (
    select * from (
        values
        {%- for window in var('stress_windows') %}
            ('{{ window.name }}', date '{{ window.start }}', date '{{ window.end }}'){{ ',' if not loop.last }}
        {%- endfor %}
    ) as windows (period, start_date, end_date)
),

returns as (
    select strategy, cast(date as date) as date, net_return
    from daily
),

market_regimes as (
    select
        cast(date as date) as date,
        arg_max(regime, probability) as regime
    from regime_probabilities
    group by 1
),

by_year as (
    select
        strategy,
        'year' as breakdown,
        cast(year(date) as varchar) as period,
        date,
        net_return
    from returns
),

by_regime as (
    select
        r.strategy,
        'regime' as breakdown,
        'regime ' || cast(m.regime as varchar) as period,
        r.date,
        r.net_return
    from returns as r
    inner join market_regimes as m
        on m.date = r.date
),

by_stress_window as (
    select
        r.strategy,
        'stress' as breakdown,
        w.period,
        r.date,
        r.net_return
    from returns as r
    inner join stress_windows as w
        on r.date between w.start_date and w.end_date
),

labelled as (
    select * from by_year
    union all
    select * from by_regime
    union all
    select * from by_stress_window
),

equity as (
    select
        *,
        product(1 + net_return) over (
            partition by strategy, breakdown, period order by date rows between unbounded preceding and current row
        ) as equity
    from labelled
),

drawdowns as (
    select
        *,
        equity / greatest(
            max(equity) over (
                partition by strategy, breakdown, period order by date rows between unbounded preceding and current row
            ),
            1
        ) - 1 as drawdown
    from equity
),

final as (
    select
        strategy,
        breakdown,
        period,
        count(*) as sessions,
        product(1 + net_return) - 1 as total_return,
        stddev_samp(net_return) * sqrt(252) as volatility,
        case
            when stddev_samp(net_return) > 0 then avg(net_return) / stddev_samp(net_return) * sqrt(252)
        end as sharpe,
        min(drawdown) as max_drawdown
    from drawdowns
    group by strategy, breakdown, period
)

select * from final
