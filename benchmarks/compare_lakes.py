"""Compare every table and view of two pmx lakes, row for row: how many rows each has that the other
lacks (EXCEPT ALL both ways; row order is ignored).

Used to check that a change leaves what a run stores as it was: refresh a copy of one built warehouse
with each version of the code, then ``python benchmarks/compare_lakes.py LAKE_A LAKE_B``. Columns that
stamp a run (timestamps, ``run_id``, ``refreshed_at``) and BLOBs are left out; floats are compared
exactly unless ``--decimals N`` rounds them first. Exits 1 if any table differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_pmx.lake import Lake  # noqa: E402

STAMPS = {"run_id", "refreshed_at"}


def columns_by_table(con, database: str) -> dict[tuple[str, str], list[tuple[str, str]]]:
    rows = con.execute(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema not in ('information_schema', 'pg_catalog') "
        "order by table_schema, table_name, ordinal_position",
        [database],
    ).fetchall()
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, dtype in rows:
        out.setdefault((schema, table), []).append((column, dtype))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="a lake's catalog (e.g. warehouse/pmx.ducklake)")
    parser.add_argument("b", help="the other lake's catalog")
    parser.add_argument("--decimals", type=int, default=None, help="round floats to this many decimals first")
    args = parser.parse_args()
    with Lake.at(args.a).open(read_only=True) as con:
        con.execute(Lake.at(args.b).attach_sql(alias="other", read_only=True))
        mine, theirs = columns_by_table(con, "pmx"), columns_by_table(con, "other")
        differ = 0
        for key in sorted(set(mine) | set(theirs)):
            if key not in mine or key not in theirs:
                print(f"{'.'.join(key)}: only in {'A' if key in mine else 'B'}")
                differ += 1
                continue
            kept = [(c, d) for c, d in mine[key] if (c, d) in theirs[key] and c not in STAMPS and "TIMESTAMP" not in d]
            kept = [(c, d) for c, d in kept if d != "BLOB"]
            if not kept:
                continue

            def column(name: str, dtype: str) -> str:
                if args.decimals is not None and dtype in ("DOUBLE", "FLOAT"):
                    return f'round("{name}"::double, {args.decimals}) as "{name}"'
                return f'"{name}"'

            select = ", ".join(column(c, d) for c, d in kept)
            a, b = (f'select {select} from {db}."{key[0]}"."{key[1]}"' for db in ("pmx", "other"))
            only_a, only_b, rows_a, rows_b = con.execute(
                f"select (select count(*) from ({a} except all {b})), (select count(*) from ({b} except all {a})), "
                f"(select count(*) from ({a})), (select count(*) from ({b}))"
            ).fetchone()
            if only_a or only_b:
                print(f"{'.'.join(key)}: {only_a} of {rows_a} rows only in A, {only_b} of {rows_b} only in B")
                differ += 1
        print(f"tables that differ: {differ} of {len(set(mine) | set(theirs))}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
