"""Column documentation of the tables Python assets write (dbt documents its own in YAML).

Shown in the Dagster UI as each asset's column schema; an end-to-end test checks that the
tables have exactly these columns.
"""

import dagster as dg


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
    ("model", "varchar", "Model scored (a name from python_models.registry.MODELS, or ensemble)."),
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
        "Diebold–Mariano statistic, squared loss, HLN-corrected, vs the random walk; "
        "negative = lower loss than the random walk; NULL for the random walk itself.",
    ),
    ("dm_pvalue", "double", "Two-sided p-value of dm_stat (Student t, n - 1 df)."),
    (
        "ljung_box_pvalue",
        "double",
        "Ljung–Box p-value of the errors (every h-th, non-overlapping; up to 10 lags): small = the errors "
        "are autocorrelated, the forecast leaves predictable structure unused.",
    ),
)

REGIME_PROBABILITIES = _schema(
    ("ticker", "varchar", "Series the regimes describe (the benchmark index: the market's regime)."),
    ("date", "timestamp_ns", "Session the probability is filtered at (uses sessions up to and including it)."),
    ("regime", "bigint", "Regime index, ordered by the state's mean volatility: 0 calmest."),
    ("probability", "double", "Filtered probability of the regime at the date; sums to 1 over regimes."),
    ("train_end", "timestamp_ns", "Last session of the HMM fit's training window (before the date, with the gap)."),
)

ALLOCATIONS = _schema(
    ("strategy", "varchar", "ensemble, or a single model's name."),
    ("date", "date", "Decision session: weights set at its close, held over the next session."),
    ("ticker", "varchar", "Ticker, or CASH for the uninvested remainder."),
    ("weight", "double", "Fraction of equity; risky weights lie in [0, position cap]."),
    ("sleeve", "varchar", "risky (equities) or safe (CASH)."),
)

BACKTEST_DAILY = _schema(
    ("strategy", "varchar", "Strategy, or benchmark (S&P 500 buy-and-hold)."),
    ("date", "date", "Session whose return is earned."),
    ("gross_return", "double", "Previous close's weights times this session's returns."),
    ("cost", "double", "cost_bps / 1e4 times turnover at this close."),
    ("net_return", "double", "gross_return - cost."),
    ("equity", "double", "Cumulative product of (1 + net_return), from 1."),
    ("drawdown", "double", "equity / running peak - 1 (<= 0)."),
    ("turnover", "double", "Sum of absolute trades at this close against the drifted weights."),
)

BACKTEST_SUMMARY = _schema(
    ("strategy", "varchar", "Strategy, or benchmark."),
    ("sharpe", "double", "Annualised mean / std of daily net returns, zero risk-free rate."),
    ("sortino", "double", "Annualised mean / root mean square of negative daily returns."),
    ("max_drawdown", "double", "Largest fall from a peak of equity (<= 0)."),
    ("information_ratio", "double", "Annualised mean / std of (net return - benchmark return)."),
    ("hit_rate", "double", "Share of positive days among days with a non-zero return."),
    ("profit_factor", "double", "Sum of daily gains / absolute sum of daily losses."),
    ("cagr", "double", "Compound annual growth rate over n / 252 years."),
    ("volatility", "double", "Annualised standard deviation of daily net returns."),
    ("turnover", "double", "Mean daily turnover times 252."),
    ("start_date", "date", "First session."),
    ("end_date", "date", "Last session."),
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
        "Diebold–Mariano (HLN-corrected, lag h - 1) on the daily mean of e_a^2 - e_b^2; negative = a better.",
    ),
    ("dm_pvalue", "double", "Two-sided p-value of dm_stat (Student t, n_dates - 1 df)."),
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
