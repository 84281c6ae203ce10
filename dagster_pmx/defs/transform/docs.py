"""dbt's documentation site for the warehouse: every dbt model and every table Python writes (declared as dbt
sources, ``dbt_sources.py``), with their documented columns and the lineage between them.

``build_docs()`` runs ``dbt docs generate --static``. It works before any run: without a warehouse the catalog
is left empty, and the site still shows every model and source with the columns
their YAML documents; after a run the catalog adds each table's actual column types. Open
``<target>/static_index.html`` (one self-contained file), or serve the folder with ``dbt docs serve``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from dagster_pmx.config import load_config
from dagster_pmx.defs.transform.project import DBT_DIR, DBT_EXECUTABLE, dbt_env, dbt_project, ensure_packages
from dagster_pmx.lake import Lake

#: Where the site goes by default (inside dbt's own target folder: git-ignored, removed by ``make clean``).
DOCS_DIR = DBT_DIR / "target" / "docs"


def _catalog_source(lake: Lake) -> str | None:
    """Why the catalog must stay empty, or None when dbt may read ``lake``'s catalog (a run writing it
    meanwhile is no reason: a DuckLake serves readers beside its writer)."""
    return None if lake.exists() else f"no warehouse at {lake.catalog} yet"


def docs_command(target: Path, empty_catalog: bool) -> list[str]:
    """The dbt command that builds the site into ``target``."""
    command = [DBT_EXECUTABLE, "docs", "generate", "--static"]
    command += ["--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR), "--target-path", str(target)]
    return command + (["--empty-catalog"] if empty_catalog else [])


def build_docs(target: str | Path | None = None, lake: Lake | None = None, quiet: bool = False) -> Path:
    """Build dbt's documentation site into ``target`` (default ``dbt_project/target/docs``) from the warehouse
    ``lake`` (default: the configured one, pmx.toml's ``warehouse`` or ``$PMX_WAREHOUSE``), and return the
    site's page.

    The warehouse is only read, and never created: without one the catalog is empty."""
    target = Path(target or DOCS_DIR).resolve()
    lake = lake or load_config().lake
    ensure_packages()
    target.mkdir(parents=True, exist_ok=True)
    # dbt's partial parse state from the last parse: dbt reuses what still holds, and parses the rest
    parsed = dbt_project.manifest_path.parent / "partial_parse.msgpack"
    if parsed.is_file() and not (target / parsed.name).exists():
        shutil.copy(parsed, target / parsed.name)
    why_empty = _catalog_source(lake)
    with tempfile.TemporaryDirectory() as scratch:
        # without a warehouse, dbt attaches a throwaway lake: the profile's attach would create one
        read = Lake.at(Path(scratch) / "empty.ducklake") if why_empty else lake
        read.open().close()  # installs the extensions dbt-duckdb loads (from their PyPI packages)
        env = {**os.environ, **dbt_env(read)}
        command = docs_command(target, empty_catalog=why_empty is not None)
        done = subprocess.run(command, env=env, cwd=DBT_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    page = target / "static_index.html"
    if not quiet:
        print(f"dbt docs: {page}")
        print(f"  catalog: {'empty, ' + why_empty if why_empty else lake.catalog}")
        print(f"  serve it: dbt docs serve --project-dir {DBT_DIR} --profiles-dir {DBT_DIR} --target-path {target}")
    return page


def main() -> None:
    build_docs()


if __name__ == "__main__":
    main()
