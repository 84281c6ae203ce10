"""dbt sources for the tables Python writes, generated from the Dagster asset definitions.

The Python assets document their tables once: the asset's description, and its columns as Dagster column
schema metadata (``dagster_pmx/defs/schemas.py``). This module writes them out as dbt sources, so that dbt's
documentation site (``dagster_pmx.defs.transform.docs``) shows every table of the warehouse, with its columns
and lineage, and dbt models can read them with ``source()``. The YAML is generated and committed; a test fails
when it differs from what this module writes now. After changing a Python asset's table, run::

    python -m dagster_pmx.defs.transform.dbt_sources

Sources are named after their schema (``raw``, ``ml``, ``marts``): ``PmxTranslator`` maps the source table
``marts.backtest_daily`` to the asset key ``marts/backtest_daily``, the Python asset that writes it, so a dbt
model reading it is downstream of that asset. Sources carry no dbt tests: the tables they describe are gated
by the Python assets' own checks, and ``dbt build`` runs before most of them exist.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

from dagster_pmx.defs.transform.project import DBT_DIR

SOURCES_YML = DBT_DIR / "models" / "sources" / "_python_sources.yml"

#: The schemas Python writes to, one dbt source each.
SCHEMAS = {
    "raw": "Raw data as ingested by the Dagster ingest assets (idempotent upserts). A row an ingest replaces is "
    "first copied, as it was, into <table>_audit.",
    "ml": "Outputs of the Python forecasting, governance and portfolio assets that the marts build on.",
    "marts": "Analyst-facing tables written by Python assets: model scores and comparisons, governance, "
    "allocations, backtests, capacity, validation and the paper-trading ledger. The marts dbt builds are models.",
}

Column = tuple[str, str, str]  # name, type, description

#: Tables Python writes beside an asset's own table (no asset of their own): description and columns.
SIDE_TABLES: dict[str, tuple[str, list[Column]]] = {
    "ml.model_fits": (
        "The fit store, written by ml/base_forecasts: every stored fit of every model, versioned and pickled into "
        "the warehouse. The current fit of a (model, ticker) is the one stored last; the daily refresh forecasts "
        "with it, the weekly retrain adds fits on the latest window.",
        [
            ("fit_id", "varchar", "model/ticker/train_start/train_end (ticker * for a pooled model); unique."),
            ("model", "varchar", "Model fitted."),
            ("ticker", "varchar", "Ticker fitted, or * for a model pooled across tickers."),
            ("train_start", "timestamp", "First session of the training window."),
            ("train_end", "timestamp", "Last session of the training window."),
            ("converged", "boolean", "Whether the estimation converged."),
            ("fitted_by", "varchar", "walk_forward (the full build's last fold) or retrain (the weekly retrain)."),
            ("run_id", "varchar", "Dagster run that stored the fit."),
            ("fitted_at", "timestamp", "When it was stored (UTC)."),
            ("params", "varchar", "The fit's numeric parameters, JSON ({} for models without them)."),
            ("fit", "blob", "The pickled fit (dagster_pmx.defs.forecasting.fits.load_fit restores it)."),
        ],
    ),
    "raw.corporate_actions": (
        "Splits and dividends an API source (yahoo, alphavantage) returned with its prices, written by raw/prices: "
        "one row per (ticker, date, action, source). Empty for the bundled and CSV sources.",
        [
            ("ticker", "varchar", "Ticker."),
            ("date", "date", "Ex-date of the action, exchange-local."),
            ("action", "varchar", "split or dividend."),
            ("value", "double", "Split ratio (new shares per old share) or dividend per share."),
            ("source", "varchar", "Source that reported it; part of the key."),
            ("ingested_at", "timestamp", "When this row was first stored or last changed (UTC)."),
        ],
    ),
}

#: Tables whose ingest keeps each replaced row, as it was, in ``<table>_audit`` with the time it was replaced.
AUDITED = ("raw.prices", "raw.macro", "raw.corporate_actions")
REPLACED_AT: Column = ("replaced_at", "timestamp", "When the row was replaced by a changed one (UTC).")


@dataclass(frozen=True)
class Table:
    """A table Python writes, as a dbt source table."""

    schema: str
    name: str
    description: str
    columns: list[Column]


def python_assets() -> list[dg.AssetSpec]:
    """The asset specs of every module of ``dagster_pmx.defs`` but this package: the Python assets, read without
    the dbt assets (whose manifest needs these sources first)."""
    import dagster_pmx.defs

    modules = [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(dagster_pmx.defs.__path__, "dagster_pmx.defs.")
        if not info.name.startswith(__package__)
    ]
    assets = dg.load_assets_from_modules(modules)
    return [spec for a in assets if isinstance(a, dg.AssetsDefinition) for spec in a.specs]


def python_tables(specs: list[dg.AssetSpec] | None = None) -> list[Table]:
    """Every table the Python assets (``specs``, by default :func:`python_assets`) write, with their side
    tables: the dbt sources."""
    tables = {}
    for spec in python_assets() if specs is None else specs:
        if "dbt" in spec.kinds or "duckdb" not in spec.kinds:
            continue
        key = spec.key
        if len(key.path) != 2 or key.path[0] not in SCHEMAS:
            raise ValueError(f"asset {key.to_user_string()} writes a table outside {sorted(SCHEMAS)}: add its schema")
        name = ".".join(key.path)
        schema = spec.metadata.get("dagster/column_schema")
        if schema is not None:
            columns = [(c.name, c.type, c.description or "") for c in schema.columns]
        else:
            raise ValueError(f"asset {key.to_user_string()} declares no column schema: add one to defs/schemas.py")
        tables[name] = Table(*key.path, spec.description or "", columns)
    for name, (description, columns) in SIDE_TABLES.items():
        tables[name] = Table(*name.split("."), description, columns)
    for name in AUDITED:
        base = tables[name]
        description = f"Rows of {name} as they were before an ingest replaced them with changed ones, and when."
        tables[f"{name}_audit"] = Table(base.schema, f"{base.name}_audit", description, [*base.columns, REPLACED_AT])
    return sorted(tables.values(), key=lambda t: (list(SCHEMAS).index(t.schema), t.name))


class _Dumper(yaml.SafeDumper):
    """Lists indented under their key, as in the project's hand-written YAML."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):  # noqa: ARG002 (PyYAML's signature)
        return super().increase_indent(flow, False)


def render(tables: list[Table]) -> str:
    """The sources YAML of ``tables``."""
    sources = []
    for schema, description in SCHEMAS.items():
        sources.append(
            {
                "name": schema,
                "schema": schema,
                "description": description,
                "tables": [
                    {
                        "name": t.name,
                        "description": " ".join(t.description.split()),
                        "columns": [{"name": n, "data_type": typ, "description": doc} for n, typ, doc in t.columns],
                    }
                    for t in tables
                    if t.schema == schema
                ],
            }
        )
    header = (
        "# Generated by `python -m dagster_pmx.defs.transform.dbt_sources` from the Python assets' descriptions and\n"
        "# column schemas (dagster_pmx/defs/schemas.py): edit those, then run it. Do not edit this file.\n"
    )
    body = yaml.dump(
        {"version": 2, "sources": sources},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=120,
        default_flow_style=False,
    )
    return header + body


def main(path: Path = SOURCES_YML) -> Path:
    """Write the sources YAML of the code location's Python tables to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(python_tables()), encoding="utf-8")
    print(f"wrote {path.relative_to(DBT_DIR.parent) if path.is_relative_to(DBT_DIR.parent) else path}")
    return path


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:2]))
