"""An analyst's session, as a separate process: ``python -m tests.e2e.reader_probe WAREHOUSE OUT STOP``.

Every ~0.2 s, until the file STOP exists, it reads one fingerprint of the state (allocations, the daily
backtest and raw prices in one query: one snapshot) on a connection held open since the start
(``held``), and every fifth time (~1 s) also on a fresh ``dagster_pmx.connect()`` (``fresh``: the latest
run point). A connect attaches the lake twice (~0.2 s of CPU): every 0.2 s it took a core from the
runs the probe watches, on a 2-core machine. Each read is a
JSON line in OUT: which connection, the fingerprint, the error if any, and how long it took.
"""

import json
import sys
import time
from pathlib import Path

from dagster_pmx.reader import connect

#: Counts and last dates of tables a run rewrites at different steps, read in one statement.
FINGERPRINT = """
select (select count(*) from marts.allocations) as allocations,
       (select max(date)::varchar from marts.allocations) as allocations_last,
       (select count(*) from marts.backtest_daily) as backtest_days,
       (select max(date)::varchar from marts.backtest_daily) as backtest_last,
       (select count(*) from raw.prices) as raw_prices
"""


def fingerprint(con) -> list:
    return list(con.execute(FINGERPRINT).fetchone())


def main(warehouse: str, out: str, stop: str) -> None:
    held = connect(warehouse)
    with open(out, "a") as log:
        tick = 0
        while not Path(stop).exists():
            tick += 1
            for kind in ("held", "fresh") if tick % 5 == 1 else ("held",):
                started = time.perf_counter()
                try:
                    if kind == "held":
                        state, error = fingerprint(held), None
                    else:
                        with connect(warehouse) as con:
                            state, error = fingerprint(con), None
                except Exception as exc:  # every failure is a finding: recorded, never raised
                    state, error = None, repr(exc)
                seconds = time.perf_counter() - started
                log.write(json.dumps({"kind": kind, "state": state, "error": error, "seconds": seconds}) + "\n")
                log.flush()
            time.sleep(0.2)
    held.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
