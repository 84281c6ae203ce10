"""``python -m dagster_pmx.sql``: a read-only SQL prompt on the warehouse (``make sql``).

``python -m dagster_pmx.sql "select * from marts.backtest_summary"`` runs one statement;
with no argument it reads statements (ending in ``;``) from the terminal or standard input.
pip's ``duckdb-cli`` (1.5) cannot read files written by the DuckDB 2.0 library pmx pins, so
this uses the library itself.
"""

from __future__ import annotations

import os
import sys

import duckdb

from dagster_pmx.config import load_config


def run(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    try:
        result = con.sql(statement)
        if result is not None:
            result.show(max_rows=60, max_width=200)
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)


def main(argv: list[str]) -> int:
    path = load_config().warehouse  # pmx.toml, overridden by PMX_WAREHOUSE
    if not os.path.exists(path):
        print(f"no warehouse at {path}: run `make run` first", file=sys.stderr)
        return 1
    with duckdb.connect(path, read_only=True) as con:
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
