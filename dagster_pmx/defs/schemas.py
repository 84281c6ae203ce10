"""Column documentation of the tables Python assets write (dbt documents its own in YAML).

Shown in the Dagster UI as each asset's column schema; an end-to-end test checks that the
tables have exactly these columns.
"""

import dagster as dg
import pandas as pd

#: pandas types of the column types the schemas name (a string column stays text when it holds no value:
#: DuckDB reads an empty or all-NULL object column as INTEGER).
PANDAS_TYPES = {
    "varchar": "string",
    "bigint": "int64",
    "date": "datetime64[ns]",
    "timestamp": "datetime64[ns]",
    "timestamp_ns": "datetime64[ns]",
    "double": "float64",
    "boolean": "boolean",
}


def empty_frame(schema: dg.TableSchema) -> pd.DataFrame:
    """A table of ``schema`` with no rows but its column types."""
    return pd.DataFrame({c.name: pd.Series(dtype=PANDAS_TYPES[c.type]) for c in schema.columns})


def typed(frame: pd.DataFrame, schema: dg.TableSchema) -> pd.DataFrame:
    """``frame``'s columns of ``schema``, in its order, as :data:`PANDAS_TYPES` types them."""
    return frame[[c.name for c in schema.columns]].astype({c.name: PANDAS_TYPES[c.type] for c in schema.columns})


def _schema(*columns: tuple[str, str, str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, type_, description=doc) for name, type_, doc in columns])


RAW_PRICES = _schema(
    ("ticker", "varchar", "Ticker symbol (SP500 is the S&P 500 index)."),
    ("date", "date", "Trading session date, exchange-local."),
    ("open", "double", "Open; NULL for close-only sources."),
    ("high", "double", "High; NULL for close-only sources."),
    ("low", "double", "Low; NULL for close-only sources."),
    ("close", "double", "Close as published."),
    ("adj_close", "double", "Split- and dividend-adjusted close."),
    ("volume", "double", "Shares traded; NULL where the source has none."),
    ("source", "varchar", "skfolio, arch or csv; part of the key."),
    ("ingested_at", "timestamp", "When this row was first stored or last changed (UTC); unchanged rows keep it."),
    (
        "flags",
        "varchar",
        "Repairs the data-quality wall made (timezone_shifted(+1d), zero_volume_move); empty if none.",
    ),
)

RAW_QUARANTINE = _schema(
    ("ticker", "varchar", "Ticker as received (upper-cased)."),
    ("date", "date", "Session as parsed (NULL when the date did not parse)."),
    ("source", "varchar", "Source that sent the row."),
    ("reason", "varchar", "Rule that refused it (python_models.data_quality.wall)."),
    ("detail", "varchar", "What the rule saw."),
    ("row_json", "varchar", "The row as received, JSON (values as text)."),
    ("quarantined_at", "timestamp", "When it was first refused."),
)

RAW_INGEST_REPORT = _schema(
    ("ticker", "varchar", "Ticker."),
    ("source", "varchar", "Source of the latest ingest."),
    ("check_name", "varchar", "missing_session, no_data, duplicate_identical, timezone_shifted or zero_volume_move."),
    ("count", "bigint", "Sessions or rows concerned."),
    ("detail", "varchar", "The first few sessions, or what was done."),
    ("reported_at", "timestamp", "When the ingest ran."),
)

RAW_MACRO = _schema(
    ("series_id", "varchar", "Mkt-RF, SMB, HML, RF, AAA, BAA, CPILFESL."),
    ("date", "date", "First day of the month the value refers to."),
    ("value", "double", "Value in the published unit."),
    ("unit", "varchar", "percent_per_month, percent_per_year or index."),
    ("source", "varchar", "Source of the series; part of the key."),
    ("ingested_at", "timestamp", "When this row was first stored or last changed (UTC); unchanged rows keep it."),
)

MODEL_SCORES = _schema(
    ("model", "varchar", "Model scored (a name from python_models.forecasters.registry.MODELS, or ensemble)."),
    ("ticker", "varchar", "Ticker."),
    ("horizon", "bigint", "Forecast horizon in sessions."),
    ("n_obs", "bigint", "Realised out-of-sample forecasts scored."),
    ("rmse", "double", "Root mean squared error of the simple-return forecast."),
    ("mae", "double", "Mean absolute error."),
    ("smape", "double", "Symmetric MAPE in percent, 100 * mean(2|e| / (|y| + |y_pred|))."),
    ("directional_accuracy", "double", "Share of forecasts with the realised sign."),
    ("tracking_error", "double", "Standard deviation (ddof 1) of the forecast errors."),
    (
        "dm_stat",
        "double",
        "Diebold–Mariano statistic, squared loss, fixed-smoothing (t with 2m df), vs the random walk; "
        "negative = lower loss than the random walk; NULL for the random walk itself.",
    ),
    ("dm_pvalue", "double", "Two-sided p-value of dm_stat (Student t, 2m df, m frequencies: docs/models.md)."),
    (
        "ljung_box_pvalue",
        "double",
        "Ljung–Box p-value of the errors (every h-th, non-overlapping; up to 10 lags): small = the errors "
        "are autocorrelated, the forecast leaves predictable structure unused.",
    ),
)

BASE_FORECASTS = _schema(
    ("model", "varchar", "Single model (a name from python_models.forecasters.registry.MODELS)."),
    ("ticker", "varchar", "Ticker forecast."),
    ("asof_date", "timestamp", "Session at whose close the forecast was made; it uses no later information."),
    ("horizon", "bigint", "Sessions ahead (1, 5, 21, 63)."),
    ("y_pred", "double", "Expected simple return from the close of asof_date to the close of target_date."),
    ("y_lower", "double", "Lower bound of the central 90 % prediction interval (simple return)."),
    ("y_upper", "double", "Upper bound of the central 90 % prediction interval (simple return)."),
    ("y_std", "double", "Predictive standard deviation of the simple return."),
    ("confidence", "double", "Predictive probability that the realised return has the sign of y_pred."),
    ("train_start", "timestamp", "First session of the fit's training window."),
    ("train_end", "timestamp", "Last session of the fit's training window (before asof_date, purged)."),
    ("converged", "boolean", "Whether the fit's estimation converged (true for models without the diagnostic)."),
    ("target_date", "timestamp_ns", "The session horizon sessions after asof_date; NULL while beyond the data."),
    ("fit_id", "varchar", "The fit behind the row, a key of ml.model_fits."),
)

ENSEMBLE_FORECASTS = _schema(
    ("model", "varchar", "ensemble, ensemble_stacking or ensemble_regime."),
    ("ticker", "varchar", "Ticker forecast."),
    ("asof_date", "timestamp", "Session at whose close the combination was made."),
    ("horizon", "bigint", "Sessions ahead."),
    ("target_date", "timestamp_ns", "The session horizon sessions after asof_date; NULL while beyond the data."),
    ("y_pred", "double", "Combined expected simple return over the horizon."),
    ("y_lower", "double", "Lower bound of the central 90 % prediction interval."),
    ("y_upper", "double", "Upper bound of the central 90 % prediction interval."),
    ("y_std", "double", "Predictive standard deviation of the combination."),
    ("confidence", "double", "Predictive probability that the realised return has the sign of y_pred."),
)

ENSEMBLE_WEIGHTS = _schema(
    ("ensemble", "varchar", "The combination: ensemble, ensemble_stacking or ensemble_regime."),
    ("ticker", "varchar", "Ticker."),
    ("horizon", "bigint", "Sessions ahead."),
    (
        "asof_date",
        "timestamp",
        "First session at whose close the weights apply (until the next row of the same combination, ticker "
        "and horizon).",
    ),
    ("model", "varchar", "Single model weighted."),
    ("weight", "double", "The model's weight in the combination (one asof_date's weights of a combination sum to 1)."),
)

REGIME_PROBABILITIES = _schema(
    ("ticker", "varchar", "Series the regimes describe (the benchmark index: the market's regime)."),
    ("date", "timestamp_ns", "Session the probability is filtered at (uses sessions up to and including it)."),
    ("regime", "bigint", "Regime index, ordered by the state's mean volatility: 0 calmest."),
    ("probability", "double", "Filtered probability of the regime at the date; sums to 1 over regimes."),
    ("train_end", "timestamp_ns", "Last session of the HMM fit's training window (before the date, with the gap)."),
)

ALLOCATIONS = _schema(
    (
        "strategy",
        "varchar",
        "governed (per-asset Kelly on marts.signals), barbell (regime-aware multi-asset Kelly barbell), "
        "risk_parity, or a model's name (its own forecasts, ungoverned).",
    ),
    ("date", "date", "Decision session: weights set at its close, traded per PMX_EXECUTION, held until the next one."),
    ("ticker", "varchar", "Ticker; BOND (the safe sleeve's bond proxy) or CASH (the uninvested remainder)."),
    ("weight", "double", "Fraction of equity; risky weights lie in [0, position cap]."),
    ("sleeve", "varchar", "risky (equities) or safe (BOND, CASH)."),
)

SAFE_SLEEVE = _schema(
    ("date", "timestamp_ns", "Session."),
    ("bond_return", "double", "Return of the bond proxy over the session (its month's return spread evenly)."),
    ("known_yield", "double", "AAA yield (decimal) known at the month's start: the value of two months before."),
    ("forecast_change", "double", "Walk-forward forecast of the yield change over the session's month."),
    ("change_std", "double", "Standard deviation of the known monthly yield changes so far."),
    ("bond_share", "double", "Share of the safe sleeve in the bond: clip(0.5 - forecast / (2 std), 0, 1); 0 unknown."),
)

DRAWDOWN_CONTROL = _schema(
    ("strategy", "varchar", "A strategy the risk limits apply to (governed, barbell, risk_parity)."),
    ("date", "timestamp_ns", "Session whose close set the state."),
    (
        "state",
        "varchar",
        "normal, de_risked or stopped: de_risk mode, drawdown reached 15 % (until back above 10 %) or 25 %; hard_cap "
        "mode, a scale below 1 or of 0.",
    ),
    (
        "scale",
        "double",
        "Multiplier on the risky positions decided at this close: 1, 0.5 or 0 (de_risk); tenths from 0 to 1 "
        "(hard_cap).",
    ),
    (
        "drawdown",
        "double",
        "Equity over its peak minus 1 at this close (the peak resets when an emergency stop ends).",
    ),
    ("mode", "varchar", "The control's mode (PMX_DRAWDOWN_MODE): de_risk or hard_cap."),
    (
        "de_risk_at",
        "double",
        "PMX_DRAWDOWN_DE_RISK: the drawdown that de-risks (de_risk) or the floor's depth (hard_cap).",
    ),
    ("stop_at", "double", "PMX_DRAWDOWN_STOP: the drawdown of the emergency stop."),
    ("cap_multiplier", "double", "PMX_DRAWDOWN_CAP_MULTIPLIER: hard_cap's scale per unit of cushion."),
)

ES_CONTROL = _schema(
    ("strategy", "varchar", "A strategy the risk limits apply to (governed, barbell, risk_parity)."),
    ("date", "timestamp_ns", "Decision date (the close the weights were decided at)."),
    (
        "es_before",
        "double",
        "One-session ES at `level` of the decided positions revalued on the last 252 sessions of their assets' "
        "returns (a positive loss; null with fewer sessions behind the decision).",
    ),
    ("scale", "double", "Multiplier the limit put on the risky positions: 1 where it did not bind."),
    ("es_after", "double", "The same ES after the scaling: at most `limit` unless the safe sleeve alone exceeds it."),
    ("limit", "double", "The cap (PMX_ES_LIMIT)."),
    ("level", "double", "Confidence of the ES (PMX_ES_LEVEL)."),
)

STRATEGY_DECISIONS = _schema(
    ("strategy", "varchar", "A strategy the drawdown control applies to (governed, barbell, risk_parity)."),
    ("date", "timestamp_ns", "Decision date (the close the weights were decided at)."),
    ("ticker", "varchar", "Ticker, or BOND (the safe sleeve's bond proxy); CASH is the remainder."),
    ("weight", "double", "Target weight before the drawdown control scaled it (zeros kept: a decision to hold none)."),
)

CAPACITY = _schema(
    ("strategy", "varchar", "A traded strategy (barbell, governed, risk_parity)."),
    ("aum", "double", "Starting book size in currency."),
    ("priced", "boolean", "Whether impact could be priced: every traded ticker has volumes."),
    ("sharpe", "double", "Annualised Sharpe ratio net of all costs at this size (NULL when not priced)."),
    ("cagr", "double", "Compound annual growth rate net of all costs at this size."),
    ("impact_cost", "double", "Mean daily market-impact cost x 252 (fraction of equity per year)."),
    ("sharpe_decay", "double", "1 - sharpe / sharpe at the smallest size."),
    ("note", "varchar", "Why the size is not priced (which tickers lack volumes); NULL when priced."),
)

BACKTEST_ATTRIBUTION = _schema(
    ("strategy", "varchar", "Strategy, or benchmark."),
    ("year", "bigint", "Calendar year of the sessions."),
    ("sleeve", "varchar", "risky or safe."),
    ("ticker", "varchar", "Ticker, BOND or CASH."),
    (
        "model",
        "varchar",
        "Model whose signal set the position (the strategy's own model; NULL for the safe sleeve "
        "and for risk_parity and the benchmark, which use no model).",
    ),
    (
        "contribution",
        "double",
        "Sum over the year's sessions of weight held x the asset's return (gross, before costs).",
    ),
    ("sessions_held", "bigint", "Sessions with a non-zero contribution."),
)

BACKTEST_DAILY = _schema(
    ("strategy", "varchar", "Strategy, or benchmark (S&P 500 buy-and-hold)."),
    ("date", "date", "Session whose return is earned."),
    ("gross_return", "double", "Return of the book held over this session, before costs."),
    ("cost", "double", "(commission + half-spread) / 1e4 x turnover, plus impact where volumes exist."),
    ("net_return", "double", "gross_return - cost."),
    ("excess_return", "double", "net_return - the session's cash rate (intermediate.int_risk_free, 0 where unknown)."),
    ("equity", "double", "Cumulative product of (1 + net_return), from 1."),
    ("drawdown", "double", "equity / running peak - 1 (<= 0); the starting capital counts as a peak."),
    ("turnover", "double", "Sum of absolute trades executed on this session against the drifted weights."),
    ("exposure", "double", "Gross risky exposure held over the session (sum of |weight|)."),
    (
        "cash_rate_known",
        "boolean",
        "Whether the session's cash rate is known (intermediate.int_risk_free): where not (the bundled T-bill "
        "series ends in 2018), cash earned 0 and excess_return = net_return.",
    ),
)

BACKTEST_SUMMARY = _schema(
    ("strategy", "varchar", "Strategy, or benchmark."),
    ("sharpe", "double", "Annualised mean / std of daily net returns, zero risk-free rate."),
    ("sortino", "double", "Annualised mean / root mean square of negative daily returns."),
    ("max_drawdown", "double", "Largest fall from a peak of equity (<= 0); the starting capital counts as a peak."),
    ("max_drawdown_days", "bigint", "Longest stretch of sessions spent below a previous peak."),
    ("information_ratio", "double", "Annualised mean / std of (net return - benchmark return)."),
    ("hit_rate", "double", "Share of positive days among days with a non-zero return over the cash rate."),
    ("profit_factor", "double", "Sum of daily gains / absolute sum of daily losses."),
    ("cagr", "double", "Compound annual growth rate over n / 252 years."),
    ("calmar", "double", "cagr / |max_drawdown|."),
    ("volatility", "double", "Annualised standard deviation of daily net returns."),
    ("turnover", "double", "Mean daily turnover times 252."),
    ("exposure", "double", "Mean gross risky exposure."),
    ("start_date", "date", "First session."),
    ("end_date", "date", "Last session."),
    (
        "cash_rate_unknown_sessions",
        "bigint",
        "Sessions without a known cash rate (cash earned 0 on them; marts.backtest_daily.cash_rate_known).",
    ),
    (
        "return_basis",
        "varchar",
        "total return (dividend-adjusted stocks, the bond proxy's carry, cash) or, for the benchmark, price index "
        "(the S&P 500 without dividends: its returns understate a total-return index's).",
    ),
)

FIT_DIAGNOSTICS = _schema(
    (
        "fit_id",
        "varchar",
        "The fit, a key of ml.model_fits' ids (model/ticker/train_start/train_end; ticker * pooled).",
    ),
    ("model", "varchar", "Model fitted."),
    ("ticker", "varchar", "Ticker fitted, or * for a model pooled across tickers."),
    ("train_start", "timestamp", "First session of the fit's training window."),
    ("train_end", "timestamp", "Last session of the fit's training window; the fit forecasts origins after it."),
    (
        "diagnostic",
        "varchar",
        "What the model reports of the fit (docs/models.md, the table's last column): e.g. aic and the chosen "
        "order of sarimax_auto, rounds_h<h> of xgboost, slope_h<h> of the networks, policy_uplift of mssa_rl.",
    ),
    ("value", "double", "Its value (a diagnostic the fit did not measure has no row)."),
)

FEATURE_IMPORTANCES = _schema(
    ("model", "varchar", "Pooled model (xgboost)."),
    ("horizon", "bigint", "Forecast horizon in sessions of the booster."),
    ("train_start", "date", "First session of the fit's training window."),
    ("train_end", "date", "Last session of the fit's training window; the fit forecasts origins after it."),
    ("feature", "varchar", "Column of marts.features."),
    ("gain", "double", "Share of the booster's total split gain from this feature (sums to 1 per fit and horizon)."),
    ("splits", "bigint", "Splits on this feature."),
)

MODEL_COMPARISONS = _schema(
    ("horizon", "bigint", "Forecast horizon in sessions."),
    ("model_a", "varchar", "First model of the pair (alphabetical order)."),
    ("model_b", "varchar", "Second model of the pair."),
    ("n_dates", "bigint", "Origin dates both models forecast and that are realised."),
    ("n_obs", "bigint", "(ticker, origin) forecasts both made."),
    ("mse_a", "double", "Mean squared error of model_a on those forecasts."),
    ("mse_b", "double", "Mean squared error of model_b on the same forecasts."),
    (
        "dm_stat",
        "double",
        "Diebold–Mariano (fixed-smoothing, t with 2m df) on the daily mean of e_a^2 - e_b^2; negative = a better.",
    ),
    ("dm_pvalue", "double", "Two-sided p-value of dm_stat (Student t, 2m df, m frequencies: docs/models.md)."),
    ("t_stat", "double", "Paired t statistic on the per-forecast loss differentials (treats them as independent)."),
    ("t_pvalue", "double", "Two-sided p-value of t_stat; overstates significance next to dm_pvalue."),
)

MODEL_LEADERBOARD = _schema(
    ("horizon", "bigint", "Forecast horizon in sessions."),
    ("rank", "bigint", "Rank by pooled MSE within the horizon (1 = lowest)."),
    ("model", "varchar", "Model (or ensemble)."),
    ("n_obs", "bigint", "Realised forecasts scored."),
    ("mse", "double", "Mean squared error over every ticker and origin."),
    ("mse_ratio", "double", "mse / the random walk's mse at the same horizon."),
    ("directional_accuracy", "double", "Share of forecasts with the realised sign."),
    (
        "da_low",
        "double",
        "Lower end of its 90 % stationary-bootstrap interval (daily hit rates, mean block max(h, 5)).",
    ),
    ("da_high", "double", "Upper end of that interval."),
    ("dm_stat", "double", "Diebold–Mariano vs the random walk from marts.model_comparisons; negative = lower loss."),
    ("dm_pvalue", "double", "Its two-sided p-value; NULL for the random walk."),
    (
        "sharpe",
        "double",
        "Annualised net Sharpe ratio of the model's strategy (marts.backtest_daily); same at every horizon.",
    ),
    ("sharpe_low", "double", "Lower end of its 90 % stationary-bootstrap interval (mean block 21 sessions)."),
    ("sharpe_high", "double", "Upper end of that interval."),
)

_EVIDENCE = (
    ("n_dates", "bigint", "Realisation dates of loss evidence in the review window (at most 504)."),
    ("mean_loss_diff", "double", "Mean daily cross-sectional e_model^2 - e_baseline^2 (negative: lower loss)."),
    ("dm_stat", "double", "Diebold–Mariano (fixed-smoothing, t with 2m df) on that daily differential."),
    ("dm_pvalue", "double", "One-sided p-value of H0: the model's loss is not lower than the baseline's."),
    ("dm_pvalue_adjusted", "double", "dm_pvalue times the candidates judged at the review (Bonferroni), at most 1."),
    (
        "profit_factor",
        "double",
        "Profit factor of the model's own Kelly strategy over the window, valued as marts.backtest_daily values it.",
    ),
    ("baseline_profit_factor", "double", "Profit factor of the baseline's strategy over the same sessions."),
    ("pf_uplift", "double", "profit_factor / baseline_profit_factor - 1 (the bar: >= 0.03)."),
    ("max_drawdown", "double", "Max drawdown of the model's strategy over the window (<= 0)."),
    ("baseline_max_drawdown", "double", "Max drawdown of the baseline's strategy over the window."),
    ("dd_increase", "double", "|max_drawdown| / |baseline_max_drawdown| - 1 (the bar: <= 0.50)."),
    ("sharpe", "double", "Annualised Sharpe ratio of the model's strategy over the window."),
    ("baseline_sharpe", "double", "Annualised Sharpe ratio of the baseline's strategy."),
    (
        "stability",
        "double",
        "Share of years and of HMM regimes in the window where the model's strategy beat the "
        "baseline's (mean of the two shares).",
    ),
    (
        "score",
        "double",
        "Selection score in [0, 1]: 0.35 profit factor + 0.25 Sharpe + 0.20 drawdown + 0.20 "
        "stability terms (python_models.governance.policy.selection_score); 0.5 = level with the baseline.",
    ),
    (
        "passes",
        "boolean",
        "Met the promotion bar: enough evidence, dm_pvalue_adjusted < 0.05, pf_uplift >= 0.03, "
        "dd_increase <= 0.50, not stopped.",
    ),
    ("retains", "boolean", "Met the bar to stay promoted: lower mean loss, pf_uplift >= 0, dd_increase <= 0.50."),
)

GOVERNANCE_DECISIONS = _schema(
    ("decision_date", "timestamp_ns", "Close at which the decision takes effect (signals of that date follow it)."),
    (
        "action",
        "varchar",
        "promote, hold, revert, stop, resume or retrain (a decay alarm started: the decay_retrain "
        "sensor queues the weekly_retrain job); route, unroute or route_refused: fallback routing to the LLM "
        "source (llm_fallback) starts, ends, or is wanted but refused.",
    ),
    (
        "model",
        "varchar",
        "Model the decision is about (the leader after promote/hold/revert; the stopped, resumed or decayed model).",
    ),
    ("previous_model", "varchar", "Leader before the decision (the model itself for stop/resume/retrain)."),
    (
        "rolling_accuracy",
        "double",
        "The model's rolling directional accuracy (252 realised dates) at the date; on a routing row (model llm), "
        "the LLM source's balanced directional accuracy, the reading its stop acts on.",
    ),
    ("reason", "varchar", "Why, in words: the criteria met or failed."),
    *_EVIDENCE,
    (
        "thresholds",
        "varchar",
        "Every threshold of the policy in force (python_models.governance.policy.GovernancePolicy).",
    ),
)

GOVERNANCE_REVIEWS = _schema(
    ("review_date", "timestamp_ns", "Review close; the evidence uses forecasts realised and returns earned by it."),
    ("model", "varchar", "Candidate model judged against the baseline."),
    *_EVIDENCE,
    ("stopped", "boolean", "The candidate was emergency-stopped at the review."),
)

MODEL_RISK = _schema(
    ("model", "varchar", "Model (single or ensemble) at the signal horizon."),
    ("date", "timestamp_ns", "Session."),
    (
        "rolling_accuracy",
        "double",
        "Directional accuracy over the last 252 realisation dates (mean of the daily shares).",
    ),
    (
        "balanced_accuracy",
        "double",
        "Mean of the share of rises forecast up and of falls forecast down over the last 252 "
        "realisation dates (counts pooled over tickers): 0.5 for a forecaster without skill in any market; NULL when "
        "the window holds no rise or no fall.",
    ),
    ("accuracy_stop", "boolean", "The accuracy floor's stop: set when balanced_accuracy < 0.45, lifted at >= 0.50."),
    (
        "relative_loss",
        "double",
        "The model's mean squared error over the random walk's on the forecasts realised this "
        "session (same tickers and origins), minus 1: what the decay detector reads; NULL for the random walk.",
    ),
    (
        "decay_cusum",
        "double",
        "Page's CUSUM of relative_loss standardised by the trailing 252 dates' mean and long-run "
        "sd (k 0.5), carried from the last realisation date; NULL while warming up.",
    ),
    (
        "needs_retrain",
        "boolean",
        "The decay alarm: set when decay_cusum > 10 and held until it is back at 0; its start "
        "is a retrain decision in marts.governance_decisions and the decay_retrain sensor queues the retrain.",
    ),
    ("stopped", "boolean", "Emergency stop in force: accuracy_stop or needs_retrain."),
    ("active", "boolean", "The model marts.signals follows at this date."),
)

FEATURE_DRIFT = _schema(
    ("review_date", "timestamp_ns", "Governance review date."),
    ("feature", "varchar", "Column of marts.features."),
    ("psi", "double", "Population stability index: last 63 sessions vs the training window before them."),
    ("drifted", "boolean", "psi > 0.25."),
)

GOVERNED_SIGNALS = _schema(
    ("ticker", "varchar", "Ticker."),
    ("asof_date", "timestamp_ns", "Decision close."),
    ("horizon", "bigint", "Signal horizon in sessions."),
    (
        "model",
        "varchar",
        "Model the signal comes from (the active model; the baseline when all are stopped; llm:<model> on a session "
        "routed to the LLM source).",
    ),
    ("y_pred", "double", "Forecast simple return over the horizon."),
    ("y_std", "double", "Predictive standard deviation."),
    ("y_lower", "double", "Lower bound of the 90 % interval."),
    ("y_upper", "double", "Upper bound of the 90 % interval."),
    ("probability", "double", "Confidence component: Phi(|y_pred| / y_std)."),
    ("accuracy", "double", "Confidence component: trailing directional accuracy (ticker, horizon)."),
    ("agreement", "double", "Confidence component: share of single models with the same sign."),
    ("width", "double", "Confidence component: 1 / (1 + width / trailing median width)."),
    ("fit", "double", "Confidence component: 0.5 + clip(5 R2, -0.5, 0.5), trailing out-of-sample R2."),
    ("variance_ratio", "double", "Confidence component: Phi(|z|) of the VR(10) statistic."),
    ("classifier", "double", "Confidence component: the direction classifier's probability of the signal's sign."),
    ("confidence", "double", "Weighted mean of the components (python_models.governance.confidence), in [0, 1]."),
    ("direction", "bigint", "sign(y_pred)."),
    ("flips", "bigint", "Direction changes over the last 21 sessions."),
    (
        "tradable",
        "boolean",
        "May trade: a model is active (or the session is routed to the LLM source), confidence >= 0.55, flips <= 4.",
    ),
    (
        "block_reason",
        "varchar",
        "model_stopped, no_llm_signal (a routed session without the ticker's LLM signal), low_confidence or "
        "flip_flopping; NULL when tradable.",
    ),
)

DESIGN_TARGETS = _schema(
    (
        "metric",
        "varchar",
        "directional_accuracy (of forecasts at the signal horizon), or of a backtest: hit_rate, sharpe, "
        "stress_max_drawdown (the deepest drawdown within a stress window) or worst_regime_sharpe (the lowest "
        "Sharpe ratio over the HMM market regimes).",
    ),
    (
        "subject",
        "varchar",
        "Model, 'governed' (tradable governed signals), 'random_walk@governed' (the random walk on the same rows: "
        "the control for the selection of those rows) or backtested strategy.",
    ),
    ("horizon", "bigint", "Signal horizon for directional accuracy; NULL for the backtests' targets."),
    (
        "n",
        "bigint",
        "Observations resampled: origin dates (accuracy), days with a non-zero return (hit rate), sessions (the "
        "others; the stress windows' together).",
    ),
    (
        "value",
        "double",
        "Mean of the daily share of right signs, share of positive days, annualised Sharpe ratio, or drawdown as "
        "a positive fraction.",
    ),
    (
        "target",
        "double",
        "The design's target: 0.55 directional accuracy, 0.52 hit rate, 1.2 Sharpe, 0.15 stress drawdown (met "
        "below it), 0 worst-regime Sharpe.",
    ),
    ("low", "double", "Lower end of the 90 % stationary-bootstrap interval."),
    ("high", "double", "Upper end of the interval."),
    (
        "pvalue_target",
        "double",
        "One-sided bootstrap p-value of H0: value <= target (value >= target for stress_max_drawdown).",
    ),
    ("pvalue_chance", "double", "Rates only: one-sided bootstrap p-value of H0: value <= 0.5; else NULL."),
    ("met", "boolean", "value > target (value < target for stress_max_drawdown)."),
    ("significant", "boolean", "pvalue_target < 0.05: the target is met beyond sampling noise."),
)

_LEDGER = (
    ("run_id", "varchar", "Dagster run that booked the row (append-only: rows are never updated)."),
    ("booked_at", "timestamp", "When it was booked (UTC)."),
)

PAPER_ORDERS = _schema(
    ("strategy", "varchar", "Strategy whose target weights the order follows."),
    ("order_id", "varchar", "strategy:decision date:ticker; unique."),
    ("decision_date", "date", "Close at which the order was sized and placed; it executes in the next session."),
    ("ticker", "varchar", "Ticker; BOND is the safe sleeve's bond proxy."),
    ("quantity", "double", "Shares (whole lots), negative to sell."),
    ("reference_price", "double", "Mark the order was sized at."),
    ("target_weight", "double", "Target weight of the ticker in the decision."),
    *_LEDGER,
)

PAPER_FILLS = _schema(
    ("strategy", "varchar", "Strategy."),
    ("order_id", "varchar", "The order filled (one fill row per order)."),
    ("date", "date", "Session of execution."),
    ("ticker", "varchar", "Ticker."),
    ("quantity", "double", "Shares filled, negative for a sale; 0 when cancelled."),
    ("price", "double", "Execution price (the session's close or open mark)."),
    ("value", "double", "quantity x price."),
    ("commission", "double", "Commission plus half-spread paid, in currency."),
    ("impact_cost", "double", "Square-root market impact paid, in currency (0 without volumes)."),
    ("status", "varchar", "filled, partial or cancelled."),
    ("reason", "varchar", "Why partial or cancelled: participation, cash, lot or no_price."),
    *_LEDGER,
)

PAPER_POSITIONS = _schema(
    ("strategy", "varchar", "Strategy."),
    ("date", "date", "Session; one row per position held at its close."),
    ("ticker", "varchar", "Ticker."),
    ("quantity", "double", "Shares held."),
    ("price", "double", "Mark at the close (total-return: dividends reinvested)."),
    ("value", "double", "quantity x price."),
    *_LEDGER,
)

PAPER_CASH = _schema(
    ("strategy", "varchar", "Strategy."),
    ("date", "date", "Session."),
    ("opening_cash", "double", "Cash at the previous close."),
    ("interest", "double", "Cash rate earned over the session."),
    ("purchases", "double", "Value bought."),
    ("sales", "double", "Value sold."),
    ("costs", "double", "Commission, half-spread and impact paid."),
    ("cash", "double", "Cash at the close: opening + interest - purchases + sales - costs."),
    *_LEDGER,
)

PAPER_NAV = _schema(
    ("strategy", "varchar", "Strategy."),
    ("date", "date", "Session; booked once."),
    ("cash", "double", "Cash at the close."),
    ("positions_value", "double", "Positions marked at the close."),
    ("nav", "double", "cash + positions_value."),
    ("daily_return", "double", "NAV over the previous close's NAV, minus one."),
    ("costs", "double", "Costs paid in the session."),
    ("turnover", "double", "Value traded over the previous NAV."),
    *_LEDGER,
)

PAPER_TRACKING = _schema(
    ("strategy", "varchar", "Strategy traded on paper."),
    ("date", "date", "Booked session."),
    ("paper_return", "double", "Paper NAV return of the session (marts.paper_nav)."),
    (
        "backtest_return",
        "double",
        "Net return of the backtest of the same decisions over the same sessions, from cash.",
    ),
    ("return_gap", "double", "paper_return - backtest_return."),
    ("paper_cost", "double", "Paper costs over the previous NAV."),
    ("backtest_cost", "double", "Backtest costs as a fraction of equity."),
    ("paper_equity", "double", "Paper NAV over the starting capital."),
    ("backtest_equity", "double", "Backtest equity from 1 at the same start."),
)

CLASS_PROBABILITIES = _schema(
    (
        "model",
        "varchar",
        "Classifier (python_models.classification: logistic, the pooled calibrated logistic regression).",
    ),
    ("ticker", "varchar", "Ticker."),
    ("date", "timestamp", "Origin: the close the probability is made at, from that session's features."),
    ("target", "varchar", "direction (the forward return is positive) or significant_move (|fwd| > k vol sqrt(h))."),
    ("horizon", "bigint", "Horizon of the target in sessions."),
    (
        "probability",
        "double",
        "Probability of the event (the penalised likelihood's; docs/models.md#classifiers), in (0, 1).",
    ),
    (
        "base_rate",
        "double",
        "Share of events among the fit's training labels: the base-rate forecast it is scored against.",
    ),
    ("train_start", "timestamp", "First session of the fit's training window."),
    ("train_end", "timestamp", "Last session of the fit's training window (before the origin, with the gap)."),
)

CLASSIFIER_SCORES = _schema(
    ("model", "varchar", "Classifier scored."),
    ("target", "varchar", "direction or significant_move."),
    ("horizon", "bigint", "Horizon in sessions."),
    ("n_obs", "bigint", "Realised probabilities scored (every ticker pooled)."),
    ("n_dates", "bigint", "Origins (sessions) they span."),
    ("event_rate", "double", "Share of events among them."),
    ("hit_rate", "double", "Share where the class the probability favours (above 0.5: the event) happened."),
    ("base_hit_rate", "double", "The same for the base rate (the training window's majority class)."),
    ("hit_rate_diff_lower", "double", "Lower end of the 95 % block-bootstrap interval of hit_rate - base_hit_rate."),
    ("hit_rate_diff_upper", "double", "Upper end of that interval."),
    ("brier", "double", "Brier score: mean squared error of the probability against the 0/1 event."),
    ("base_brier", "double", "Brier score of the base rate on the same rows."),
    (
        "brier_diff_lower",
        "double",
        "Lower end of the 95 % block-bootstrap interval of brier - base_brier (below 0: better).",
    ),
    ("brier_diff_upper", "double", "Upper end of that interval."),
    ("log_loss", "double", "Mean negative log-likelihood of the events."),
    ("base_log_loss", "double", "Log loss of the base rate on the same rows."),
    ("log_loss_diff_lower", "double", "Lower end of the 95 % block-bootstrap interval of log_loss - base_log_loss."),
    ("log_loss_diff_upper", "double", "Upper end of that interval."),
    ("log_loss_pvalue", "double", "One-sided bootstrap p-value of H0: the classifier does not lower the log loss."),
    ("calibration_error", "double", "Expected calibration error over 10 equal-width probability bins."),
    ("block_length", "bigint", "Sessions per block of the circular block bootstrap over dates: max(horizon, 21)."),
    (
        "verdict",
        "varchar",
        "beats the base rate (log-loss interval below 0), worse than the base rate, or no different.",
    ),
)

RISK_VAR = _schema(
    ("strategy", "varchar", "Strategy, or benchmark (marts.backtest_daily)."),
    ("date", "date", "Close the estimate is made at, from the strategy's net returns up to and including it."),
    ("method", "varchar", "historical, cornish_fisher or fhs_garch (python_models/risk/var.py)."),
    ("level", "double", "Confidence: 0.95 or 0.99 (the tail probability is 1 - level)."),
    ("horizon", "bigint", "Sessions ahead: 1 or 10."),
    (
        "var",
        "double",
        "Value at risk: the loss, as a positive fraction of the book, exceeded with probability 1 - level.",
    ),
    ("es", "double", "Expected shortfall: the mean loss given that the VaR is exceeded (>= var)."),
    ("next_return", "double", "The strategy's net return over the session after date (horizon 1; else null)."),
    ("exceeded", "boolean", "The loss of that session above the one-session VaR (horizon 1; else null)."),
)

STRESS_TESTS = _schema(
    ("strategy", "varchar", "Strategy (marts.allocations)."),
    ("date", "date", "Close the book was decided at; the shock is valued with what was known then."),
    (
        "scenario",
        "varchar",
        "equity_down_20, volatility_doubled, rates_up_200bp, rates_down_200bp, replay_1987_10_19, replay_2008_10_15 "
        "or replay_lehman_2008 (python_models/risk/stress.py).",
    ),
    (
        "loss",
        "double",
        "The book's loss in the scenario, a positive fraction of the book (a gain is negative); "
        "volatility_doubled: the one-session 97.5 % ES with the window's volatility doubled. Null where it cannot be "
        "valued: fewer than 252 sessions behind the decision, or a replay of an episode not yet over or not in "
        "the data.",
    ),
    ("es_now", "double", "volatility_doubled only: the same ES at the window's own volatility."),
    (
        "estimated_weight",
        "double",
        "Replays: the book's weight in assets without returns over the episode, moved by their beta times the "
        "benchmark's return; else 0.",
    ),
)

STRESS_MONTE_CARLO = _schema(
    ("strategy", "varchar", "Strategy (marts.allocations)."),
    ("date", "date", "Close of the strategy's latest decision: the book simulated."),
    ("horizon", "bigint", "Sessions the book is held for: 21 or 252."),
    ("paths", "bigint", "Simulated paths."),
    ("block", "bigint", "Consecutive sessions of each resampled block."),
    ("history_sessions", "bigint", "Sessions resampled: those up to date on which every asset held has a return."),
    ("mean_return", "double", "Mean return of the book over the horizon."),
    ("p01", "double", "1 % quantile of that return."),
    ("p05", "double", "5 % quantile."),
    ("p50", "double", "Median."),
    ("p95", "double", "95 % quantile."),
    ("var_99", "double", "99 % VaR over the horizon, a positive loss."),
    ("es_99", "double", "99 % ES over the horizon, a positive loss."),
    (
        "prob_drawdown_15",
        "double",
        "Share of paths whose drawdown from the running peak reaches 15 % within the horizon.",
    ),
)

VAR_BACKTESTS = _schema(
    ("strategy", "varchar", "Strategy, or benchmark."),
    ("method", "varchar", "historical, cornish_fisher or fhs_garch."),
    ("level", "double", "Confidence of the one-session VaR tested."),
    ("sessions", "bigint", "Sessions with an estimate the evening before."),
    ("exceedances", "bigint", "Sessions whose loss exceeded that estimate."),
    ("expected_rate", "double", "1 - level: the exceedance rate of a correct VaR."),
    ("observed_rate", "double", "exceedances / sessions."),
    ("kupiec_lr", "double", "Kupiec's proportion-of-failures likelihood ratio (chi-squared, 1 df)."),
    ("kupiec_pvalue", "double", "Its p-value: small means the VaR is exceeded too often or too rarely."),
    (
        "independence_lr",
        "double",
        "Christoffersen's likelihood ratio of the exceedances' Markov chain against independence.",
    ),
    ("independence_pvalue", "double", "Its p-value (1 df): small means exceedances cluster."),
    ("conditional_lr", "double", "Christoffersen's conditional coverage: kupiec + independence on sessions 2..n."),
    ("conditional_pvalue", "double", "Its p-value (2 df)."),
)

LLM_SIGNALS = _schema(
    ("ticker", "varchar", "Ticker the signal is for."),
    ("date", "timestamp_ns", "Signal date: the prompt holds only what was known at its close."),
    ("horizon", "bigint", "Sessions the expected return covers (the signal horizon)."),
    ("model", "varchar", "The Ollama model that answered; empty when every model failed."),
    ("direction", "varchar", "up, down or flat; NULL when the answer did not parse."),
    ("expected_return", "double", "Expected simple return over the horizon; NULL when the answer did not parse."),
    (
        "confidence",
        "double",
        "The model's probability that the direction is right; NULL when the answer did not parse.",
    ),
    ("reason", "varchar", "The model's one-sentence reason."),
    ("valid", "boolean", "Passed every validation layer: only a valid signal may ever reach an allocation."),
    (
        "rejection",
        "varchar",
        "The first validation layer that failed (python_models.llm.signals.LAYERS); NULL when valid.",
    ),
    ("rejection_detail", "varchar", "Why, in words."),
    ("prompt", "varchar", "The user message sent (the system prompt is python_models.llm.signals.SYSTEM_PROMPT)."),
    ("prompt_hash", "varchar", "SHA-256 of the whole prompt (both messages as sorted JSON)."),
    ("answer", "varchar", "The model's raw answer."),
    ("answer_hash", "varchar", "SHA-256 of the raw answer."),
    ("attempts", "bigint", "Models tried for this signal."),
    ("failovers", "bigint", "Models abandoned (error, timeout or a token rate below llm_failover_rate)."),
    ("seconds", "double", "Seconds the answering model took; NULL when none answered."),
    ("first_token_s", "double", "Seconds to the answering model's first token."),
    ("token_rate", "double", "The answering model's tokens per second."),
    ("attempt_log", "varchar", "Every attempt as JSON: model, outcome, reason, timings (never the host)."),
    ("called_at", "timestamp_ns", "When the call was made (UTC)."),
)

LLM_SCORES = _schema(
    (
        "basis",
        "varchar",
        "live: signals asked within 5 days of their close; backfill: asked later (a model may know "
        "what followed a date before its training data ends: not evidence of skill).",
    ),
    (
        "source",
        "varchar",
        "llm: the LLM source's signals; time_series: a forecaster of marts.forecasts scored on the same (ticker, "
        "date, horizon) rows, for the comparison.",
    ),
    (
        "subject",
        "varchar",
        "The LLM model that answered, or 'all' for every model together; the forecaster for time_series.",
    ),
    ("horizon", "bigint", "Sessions the signals' expected returns cover."),
    ("metric", "varchar", "directional_accuracy, always_up_accuracy, mse_ratio or dm_stat (python_models.llm.scores)."),
    ("n_signals", "bigint", "Valid signals whose horizon has been realised."),
    ("n_dates", "bigint", "Signal dates among them."),
    ("value", "double", "The metric on those signals."),
    ("low", "double", "Lower end of the 90 % stationary-bootstrap interval over dates (directional accuracy)."),
    ("high", "double", "Upper end of that interval."),
    (
        "pvalue",
        "double",
        "One-sided p-value: accuracy no better than 0.5 (bootstrap), or loss no lower than the random "
        "walk's (Diebold–Mariano, fixed smoothing).",
    ),
)
