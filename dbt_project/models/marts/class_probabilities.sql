{{ config(tags=['post_forecast']) }}
-- Every classifier's calibrated probability with the event it forecasts, once realised: the labels come from
-- marts.targets (their one definition), so a probability and its event are the same row an analyst scores.
-- A view: the event appears as soon as marts.targets has the label.
{% set horizons = var('target_horizons') %}
with probabilities as (
    select * from {{ ref('stg_ml__class_probabilities') }}
),

targets as (
    select * from {{ ref('targets') }}
),

labelled as (
    select
        probabilities.*,
        case
            {% for h in horizons %}
            when probabilities.target = 'direction' and probabilities.horizon = {{ h }}
                then case when targets.fwd_direction_{{ h }}d > 0 then 1 when targets.fwd_direction_{{ h }}d <= 0 then 0 end
            when probabilities.target = 'significant_move' and probabilities.horizon = {{ h }}
                then case when targets.significant_move_{{ h }}d then 1 when not targets.significant_move_{{ h }}d then 0 end
            {% endfor %}
        end as event
    from probabilities
    left join targets
        on targets.ticker = probabilities.ticker
        and targets.date = probabilities.asof_date
),

final as (
    select
        model,
        ticker,
        asof_date,
        target,
        horizon,
        probability,
        base_rate,
        case when probability > 0.5 then 1 else 0 end as predicted_event,
        greatest(probability, 1 - probability) as confidence,
        cast(event as integer) as event,
        train_start,
        train_end
    from labelled
)

select * from final
