"""What the reads tests share: a seeded synthetic warehouse, and the plain SQL each ibis read is checked against."""

from pathlib import Path

import pandas as pd

from dagster_pmx.lake import Lake
from dagster_pmx.resources import Warehouse


def seeded_warehouse(path: Path, setup: str, seed: float = 0.25) -> Warehouse:
    """A warehouse file at ``path`` holding what ``setup`` (SQL) creates, its ``random()`` seeded."""
    with Lake.at(path).open() as con:
        con.execute(f"select setseed({seed})")
        con.execute(setup)
    return Warehouse(path=str(path))


def sql(warehouse: Warehouse, query: str, params: list | None = None) -> pd.DataFrame:
    """``query`` through DuckDB's own ``.df()``: the frame the read replaced."""
    with Lake.at(warehouse.path).open(read_only=True) as con:
        return con.execute(query, params or []).df()
