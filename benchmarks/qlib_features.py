"""Qlib's side of ``bench_features.py``: run by it as a child process, with the Python of the
separate ``.venv-qlib`` (``pyqlib`` is installed for the benchmark only, never into ``.venv``).

Imports numpy, pandas and qlib only, never pmx. Two commands, each printing one JSON line:

``dump UNIVERSE.npz QLIB_DIR``
    Converts the synthetic universe (long format: ticker, date, open, high, low, close,
    volume) into Qlib's binary format with Qlib's own storage classes (calendar, the ``all``
    market, one float32 ``.day.bin`` per instrument and field). Set-up, timed on its own.
``features QLIB_DIR [--values OUT.npz --tickers T0000,T0001]``
    Initialises Qlib on QLIB_DIR with the expression and dataset caches off and times
    ``D.features`` of the 14 expressions in ``EXPRESSIONS`` over every instrument and the
    whole calendar. A fresh process each time, so nothing is cached in memory either.
    ``--values`` writes those tickers' feature values for the parent's equality check.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

FIELDS = ("open", "high", "low", "close", "volume")
# pmx's QLIB_SET (dbt_project/models/intermediate/int_features_trend.sql) in Qlib's expression
# language; pmx's adj_close is $close here (the synthetic universe has no adjustment).
EXPRESSIONS = {
    **{f"ret_{n}d": f"$close/Ref($close,{n})-1" for n in (1, 5, 21, 63, 126, 252)},
    "momentum_1_20": "Ref($close,1)/Ref($close,20)-1",
    "bollinger_position": "($close-(Mean($close,20)-2*Std($close,20)))/(4*Std($close,20))",
    "dist_52w_high": "$close/Max($close,252)-1",
    "dist_52w_low": "$close/Min($close,252)-1",
    "trend_regime": "Sign(Mean($close,50)-Mean($close,200))",
    **{f"ret_lag_{k}": f"Ref($close,{k})/Ref($close,{k + 1})-1" for k in (1, 2, 3)},
}


def peak_mib() -> float:
    """This process's own peak resident memory (VmHWM: unlike ru_maxrss, not floored at the parent's
    size when the parent spawned it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def init(qlib_dir: Path) -> None:
    import qlib

    # caches off: no disk expression cache, no dataset cache (a fresh process has no memory cache)
    qlib.init(provider_uri=str(qlib_dir), region="us", expression_cache=None, dataset_cache=None)


def dump(source: Path, qlib_dir: Path) -> dict:
    from qlib.data.storage.file_storage import FileCalendarStorage, FileFeatureStorage

    started = time.perf_counter()
    with np.load(source) as npz:
        frame = pd.DataFrame({name: npz[name] for name in npz.files})
    calendar = pd.DatetimeIndex(np.sort(frame["date"].unique()))
    (qlib_dir / "calendars").mkdir(parents=True, exist_ok=True)
    (qlib_dir / "instruments").mkdir(exist_ok=True)
    (qlib_dir / "calendars" / "day.txt").touch()  # Qlib finds the frequencies a folder holds by its calendars
    init(qlib_dir)
    FileCalendarStorage(freq="day", future=False).extend(calendar.strftime("%Y-%m-%d"))
    spans = []
    for ticker, rows in frame.groupby("ticker", sort=True):
        rows = rows.sort_values("date")
        # one row per calendar session from the first to the last, NaN where a session is missing
        first, last = calendar.get_loc(rows["date"].iloc[0]), calendar.get_loc(rows["date"].iloc[-1])
        rows = rows.set_index("date").reindex(calendar[first : last + 1])
        (qlib_dir / "features" / ticker.lower()).mkdir(parents=True, exist_ok=True)
        for field in FIELDS:
            FileFeatureStorage(instrument=ticker, field=field, freq="day").write(rows[field].to_numpy(), index=first)
        spans.append((ticker, calendar[first], calendar[last]))
    # the market file as Qlib's scripts/dump_bin.py writes it (instrument, first and last date, tab-separated);
    # FileInstrumentStorage.update in 0.9.7 writes the columns in the wrong order
    with open(qlib_dir / "instruments" / "all.txt", "w") as out:
        out.writelines(f"{t}\t{a:%Y-%m-%d}\t{b:%Y-%m-%d}\n" for t, a, b in spans)
    return {"dump_s": time.perf_counter() - started, "instruments": len(spans), "sessions": len(calendar)}


def features(qlib_dir: Path, values: Path | None, tickers: list[str]) -> dict:
    from qlib.config import C

    started = time.perf_counter()
    init(qlib_dir)
    from qlib.data import D

    calendar = D.calendar(freq="day")
    init_s = time.perf_counter() - started
    began = time.perf_counter()
    frame = D.features(D.instruments("all"), list(EXPRESSIONS.values()), calendar[0], calendar[-1], freq="day")
    features_s = time.perf_counter() - began
    frame.columns = list(EXPRESSIONS)
    result = {
        "init_s": init_s,
        "features_s": features_s,
        "rows": len(frame),
        "features": len(EXPRESSIONS),
        "kernels": C["kernels"],
        "expression_cache": C["expression_cache"],
        "dataset_cache": C["dataset_cache"],
        "peak_mib": peak_mib(),
    }
    if values is not None:
        chosen = frame[frame.index.get_level_values("instrument").isin(tickers)].reset_index()
        np.savez(
            values,
            ticker=chosen["instrument"].to_numpy(dtype=str),
            date=chosen["datetime"].to_numpy(dtype="datetime64[ns]"),
            **{name: chosen[name].to_numpy(dtype="float64") for name in EXPRESSIONS},
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    to_bin = commands.add_parser("dump", help="convert the universe into Qlib's binary format")
    to_bin.add_argument("source", type=Path)
    to_bin.add_argument("qlib_dir", type=Path)
    timed = commands.add_parser("features", help="time the 14 expressions, caches off")
    timed.add_argument("qlib_dir", type=Path)
    timed.add_argument("--values", type=Path)
    timed.add_argument("--tickers", default="")
    args = parser.parse_args()
    if args.command == "dump":
        result = dump(args.source, args.qlib_dir)
    else:
        result = features(args.qlib_dir, args.values, [t for t in args.tickers.split(",") if t])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
