"""``python -m dagster_pmx.sql``: a read-only SQL prompt on the warehouse (``make sql``).

``python -m dagster_pmx.sql "select * from marts.backtest_summary"`` runs one statement;
with no argument it reads statements (ending in ``;``) from the terminal or standard input.
The prompt reads the state of the last successful run (:func:`dagster_pmx.connect`), and runs
never wait for it; ``--run ID`` / ``--snapshot N`` read an earlier state.
"""

from __future__ import annotations

import sys

import duckdb

from dagster_pmx.config import load_config
from dagster_pmx.reader import connect


def run(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    try:
        result = con.sql(statement)
        if result is not None:
            result.show(max_rows=60, max_width=200)
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)


def main(argv: list[str], run_id: str | None = None, snapshot: int | None = None) -> int:
    lake = load_config().lake  # pmx.toml, overridden by PMX_WAREHOUSE / PMX_CATALOG
    try:
        con = connect(lake=lake, run=run_id, snapshot=snapshot)
    except (FileNotFoundError, LookupError) as exc:
        print(f"pmx sql: {exc}", file=sys.stderr)
        return 1
    path = lake.catalog
    with con:
        if argv:
            run(con, " ".join(argv))
            return 0
        interactive = sys.stdin.isatty()
        if interactive:
            print(
                f"pmx warehouse {path} (read-only). End statements with ';', Ctrl-D to quit.\n"
                "Try: select * from marts.backtest_summary;"
            )
        buffer = ""
        while True:
            try:
                line = input("pmx> " if interactive and not buffer else ("...> " if interactive else ""))
            except EOFError:
                break
            buffer += line + "\n"
            if buffer.strip().endswith(";"):
                run(con, buffer)
                buffer = ""
        if buffer.strip():
            run(con, buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
