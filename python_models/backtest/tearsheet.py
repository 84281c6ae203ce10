"""Tearsheet: the plots a portfolio manager reads first, as PNG images and a self-contained HTML page.

Plots per strategy: equity against the benchmark (log scale), drawdown, rolling Sharpe,
monthly returns heatmap and allocation by sleeve over time. The page adds the summary table of
every strategy and the model leaderboard. Images are embedded as base64, so the file stands
alone.
"""

from __future__ import annotations

import base64
import html
import io
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Sessions behind the rolling Sharpe ratio (half a year).
ROLLING_WINDOW = 126
PLOTS = ("equity", "drawdown", "rolling_sharpe", "monthly_returns", "allocation")


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed (a report draws many)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def monthly_returns(net: pd.Series) -> pd.DataFrame:
    """Compounded net return per calendar month: years by months 1..12 (NaN where no session)."""
    r = pd.Series(net.to_numpy(dtype=float), index=pd.DatetimeIndex(net.index))
    by_month = (1.0 + r).groupby([r.index.year, r.index.month]).prod() - 1.0
    return by_month.unstack().reindex(columns=range(1, 13))


def rolling_sharpe(net: pd.Series, window: int = ROLLING_WINDOW) -> pd.Series:
    """Annualised Sharpe ratio of the trailing ``window`` sessions (zero risk-free rate)."""
    r = pd.Series(net.to_numpy(dtype=float), index=pd.DatetimeIndex(net.index))
    roll = r.rolling(window, min_periods=window)
    return roll.mean() / roll.std() * np.sqrt(252.0)


def _pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend (no display: images only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _equity_plot(strategy: str, daily: pd.DataFrame, benchmark: pd.DataFrame) -> bytes:
    """Equity against the benchmark, log scale."""
    fig, ax = _pyplot().subplots(figsize=(9, 3.2))
    ax.plot(daily.index, daily["equity"], label=strategy, lw=1.2)
    ax.plot(benchmark.index, benchmark["equity"], label="benchmark (S&P 500 price index)", lw=1.0, color="grey")
    ax.set_yscale("log")
    ax.set_title(f"{strategy}: equity (log scale), start = 1")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _png(fig)


def _drawdown_plot(strategy: str, daily: pd.DataFrame, benchmark: pd.DataFrame) -> bytes:
    """Drawdown from the peak, the benchmark's as a line."""
    from matplotlib.ticker import PercentFormatter

    fig, ax = _pyplot().subplots(figsize=(9, 2.6))
    ax.fill_between(daily.index, daily["drawdown"], 0.0, color="firebrick", alpha=0.5, label=strategy)
    ax.plot(benchmark.index, benchmark["drawdown"], color="grey", lw=0.8, label="benchmark")
    ax.set_title(f"{strategy}: drawdown from peak")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return _png(fig)


def _sharpe_plot(strategy: str, daily: pd.DataFrame, benchmark: pd.DataFrame) -> bytes:
    """Rolling Sharpe ratio against the benchmark's."""
    fig, ax = _pyplot().subplots(figsize=(9, 2.6))
    ax.plot(daily.index, rolling_sharpe(daily["net_return"]), lw=1.0, label=strategy)
    ax.plot(benchmark.index, rolling_sharpe(benchmark["net_return"]), lw=0.8, color="grey", label="benchmark")
    ax.axhline(0.0, color="black", lw=0.6)
    # a window of smooth returns (all bond proxy, all cash) has a near-zero sd and an unreadable spike
    ax.set_ylim(-6.0, 8.0)
    ax.set_title(f"{strategy}: rolling {ROLLING_WINDOW}-session Sharpe ratio (axis cut at -6 and 8)")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return _png(fig)


def _monthly_plot(strategy: str, daily: pd.DataFrame) -> bytes:
    """Heatmap of the monthly net returns, years by months, each cell labelled in %."""
    table = monthly_returns(daily["net_return"])
    fig, ax = _pyplot().subplots(figsize=(9, 0.28 * len(table) + 1.2))
    limit = max(float(np.nanmax(np.abs(table.to_numpy()))), 1e-6) if table.notna().any().any() else 1.0
    ax.imshow(table.to_numpy(), cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(12), ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
    ax.set_yticks(range(len(table)), [str(y) for y in table.index])
    for (i, j), v in np.ndenumerate(table.to_numpy()):
        if np.isfinite(v):
            ax.text(j, i, f"{100 * v:.1f}", ha="center", va="center", fontsize=6)
    ax.set_title(f"{strategy}: monthly net return, %")
    return _png(fig)


def _allocation_plot(strategy: str, sleeves: pd.DataFrame) -> bytes:
    """The book's weights by sleeve (or ticker group) over time, stacked."""
    fig, ax = _pyplot().subplots(figsize=(9, 2.8))
    ax.stackplot(sleeves.index, sleeves.clip(lower=0.0).T.to_numpy(), labels=list(sleeves.columns), alpha=0.85)
    ax.set_ylim(0, 1)
    ax.set_title(f"{strategy}: allocation (share of equity, monthly mean of decisions)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def figures(
    strategy: str, daily: pd.DataFrame, benchmark: pd.DataFrame, sleeves: pd.DataFrame | None = None
) -> dict[str, bytes]:
    """PNG images of one strategy, keyed by :data:`PLOTS`.

    ``daily`` and ``benchmark`` are indexed by session with ``net_return``, ``equity`` and
    ``drawdown``; ``sleeves`` (optional) holds weights by sleeve or ticker group over time.
    """
    out = {
        "equity": _equity_plot(strategy, daily, benchmark),
        "drawdown": _drawdown_plot(strategy, daily, benchmark),
        "rolling_sharpe": _sharpe_plot(strategy, daily, benchmark),
        "monthly_returns": _monthly_plot(strategy, daily),
    }
    if sleeves is not None and not sleeves.empty:
        out["allocation"] = _allocation_plot(strategy, sleeves)
    return out


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img>`` or a markdown image."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def var_plot(strategy: str, estimates: pd.DataFrame) -> bytes:
    """PNG of a strategy's one-session 99 % VaR and ES (``estimates``: ``date, method, var, es,
    next_return``, one session's rows per method) against the losses that followed."""
    wide = estimates.assign(date=pd.to_datetime(estimates["date"])).pivot(index="date", columns="method")
    lines = {f"VaR {m}": wide["var"][m] for m in wide["var"].columns}
    if "fhs_garch" in wide["es"].columns:
        lines["ES fhs_garch"] = wide["es"]["fhs_garch"]
    lines["next session's loss"] = -wide["next_return"].iloc[:, 0]
    return line_plot(lines, f"{strategy}: one-session 99 % VaR and ES against the loss that followed")


def page(
    title: str,
    summary: pd.DataFrame,
    sections: dict[str, dict[str, bytes]],
    leaderboard: pd.DataFrame,
    var_backtests: pd.DataFrame | None = None,
    stress: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    llm: pd.DataFrame | None = None,
) -> str:
    """A self-contained HTML tearsheet: the summary table, each strategy's plots, the VaR backtests and the
    stress of the current books (shocks by strategy, and the Monte Carlo), when given, the leaderboard, and
    the LLM source beside the time-series models on the same rows
    (:func:`~python_models.llm.scores.comparison_table`), when it has realised signals."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:980px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#eee}img{display:block;margin:0.5em 0}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Every strategy</h2>",
        summary.to_html(index=False, float_format=lambda x: f"{x:.3f}", border=0),
    ]
    for strategy, images in sections.items():
        parts.append(f"<h2>{html.escape(strategy)}</h2>")
        parts.extend(f"<img alt='{name}' src='{data_uri(png)}'>" for name, png in images.items())
    if var_backtests is not None and not var_backtests.empty:
        parts += [
            "<h2>Value at risk: the one-session VaR's exceedances</h2>",
            "<p>Per strategy, method and level: the share of sessions whose loss exceeded the VaR of the close "
            "before (expected: 1 - level), Kupiec's and Christoffersen's p-values (small: the VaR is wrong).</p>",
            var_backtests.to_html(index=False, float_format=lambda x: f"{x:.4f}", border=0),
        ]
    if stress is not None and not stress[0].empty:
        shocks, simulated = stress
        parts += [
            "<h2>Stress: the current books</h2>",
            "<p>Each strategy's latest book: its loss (a fraction of the book; negative: a gain) under each "
            "hypothetical shock (python_models/risk/stress.py), then a block-bootstrap Monte Carlo of the book held "
            "for 21 and 252 sessions: quantiles of its return, 99 % VaR and ES, and the probability of a 15 % "
            "drawdown.</p>",
            shocks.to_html(index=False, float_format=lambda x: f"{x:.4f}", border=0),
            simulated.to_html(index=False, float_format=lambda x: f"{x:.4f}", border=0),
        ]
    parts += [
        "<h2>Model leaderboard</h2>",
        leaderboard.to_html(index=False, float_format=lambda x: f"{x:.4f}", border=0),
    ]
    if llm is not None and not llm.empty:
        parts += [
            "<h2>The LLM source beside the time-series models</h2>",
            "<p>On the LLM's own realised signals (docs/llm.md): each forecaster scored on the same tickers and "
            "dates, by directional accuracy (90 % bootstrap interval over dates; p-value against 0.5), what always "
            "forecasting up scores, the MSE over the random walk's and the Diebold–Mariano test against it, and "
            "the Sharpe ratio of each one's own book over the sessions the LLM's book traded. Backfilled signals "
            "were asked after their date: a model may know what followed it, so only live ones are evidence.</p>",
            llm.to_html(index=False, float_format=lambda x: f"{x:.4f}", border=0),
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def line_plot(lines: dict[str, pd.Series], title: str, ylabel: str = "") -> bytes:
    """PNG of a few series on one axis (a small plot for an asset's metadata)."""
    fig, ax = _pyplot().subplots(figsize=(8, 3))
    for name, series in lines.items():
        ax.plot(pd.DatetimeIndex(series.index), series.to_numpy(dtype=float), label=name, lw=1.2)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(lines) > 1:
        ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


def markdown_image(name: str, png: bytes) -> str:
    """A markdown image with the PNG embedded, for Dagster's markdown metadata."""
    return f"![{name}]({data_uri(png)})"


def bar_plot(values: pd.Series, title: str, xlabel: str = "") -> bytes:
    """PNG of one horizontal bar per index entry (a leaderboard at a glance)."""
    values = values.sort_values()
    fig, ax = _pyplot().subplots(figsize=(7, 0.3 * len(values) + 1.2))
    ax.barh([str(i) for i in values.index], values.to_numpy(dtype=float), color="#4c72b0")
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)
