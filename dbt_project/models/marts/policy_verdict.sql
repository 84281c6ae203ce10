{{ config(tags=['post_forecast']) }}
-- Whether MSSA-RL's learned intervention policy (keep, refit or shorten the SSA window) learned anything,
-- fit by fit: each walk-forward fit's policy_uplift (the policy's one-session skill over the best fixed
-- action's, on training blocks the policy had not yet seen: python_models/forecasters/ssa_policy.py), and
-- the verdict over every fit up to and including it. The verdict is "learns" when the mean uplift so far is
-- above zero by more than 1.645 standard errors (a one-sided 5 % test, normal approximation; the fits'
-- windows overlap, so the errors are not independent and the test is generous), else "learns nothing";
-- "not measured" until a fit's window held blocks enough to measure an uplift (its policy_uplift is NULL:
-- a window of fewer than about 600 sessions holds one block, and a single block has nothing to judge by).
-- A view: it shows the fits of the state it is read at.
with fit_diagnostics as (
    select * from {{ ref('stg_ml__fit_diagnostics') }}
),

fits as (
    -- every fit of the model, whether or not its window measured an uplift
    select distinct fit_id, train_start, train_end
    from fit_diagnostics
    where model = 'mssa_rl'
),

uplifts as (
    select fit_id, value as policy_uplift
    from fit_diagnostics
    where model = 'mssa_rl' and diagnostic = 'policy_uplift'
),

running as (
    select
        fits.fit_id,
        fits.train_start,
        fits.train_end,
        uplifts.policy_uplift,
        count(uplifts.policy_uplift) over so_far as measured_so_far,
        avg(uplifts.policy_uplift) over so_far as mean_uplift_so_far,
        avg(case when uplifts.policy_uplift > 0 then 1.0 when uplifts.policy_uplift <= 0 then 0.0 end) over so_far
            as share_positive_so_far,
        stddev_samp(uplifts.policy_uplift) over so_far as sd_uplift_so_far
    from fits
    left join uplifts using (fit_id)
    window so_far as (order by fits.train_end, fits.fit_id rows between unbounded preceding and current row)
),

final as (
    select
        fit_id,
        train_start,
        train_end,
        policy_uplift,
        measured_so_far,
        mean_uplift_so_far,
        share_positive_so_far,
        case when sd_uplift_so_far > 0 then mean_uplift_so_far / (sd_uplift_so_far / sqrt(measured_so_far)) end
            as t_stat_so_far,
        case
            when measured_so_far = 0 then 'not measured'
            when sd_uplift_so_far > 0
                and mean_uplift_so_far / (sd_uplift_so_far / sqrt(measured_so_far)) > 1.645 then 'learns'
            else 'learns nothing'
        end as verdict
    from running
)

select * from final
