"""The dbt project, its packages (installed from disk) and its manifest (parsed on first use if missing)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from dagster_dbt import DbtProject

from dagster_pmx.config import load_config
from dagster_pmx.lake import DEFAULT_DUCKDB_MEMORY, Lake, duckdb_limits
from dagster_pmx.resources import REPO_ROOT

DBT_DIR = REPO_ROOT / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
# The dbt installed beside this interpreter, whether or not the venv is on PATH.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))


def dbt_env(lake: Lake, memory_limit: str = DEFAULT_DUCKDB_MEMORY) -> dict[str, str]:
    """Variables a dbt process needs to build into ``lake`` (profiles.yml reads DBT_PMX_CATALOG and
    DBT_PMX_DATA_PATH) with its DuckDB bounded to ``memory_limit`` (DBT_PMX_MEMORY_LIMIT, spilling to
    DBT_PMX_TEMP_DIRECTORY). Not PMX_CATALOG: a dbt step sets these in its own process, and a ``PMX_*``
    variable left there would become the setting of every later run or test in that process.

    The spill folder is this process's (and the lake's): a run keeps dbt's database open from one dbt step
    to the next while another process's dbt step may build the same lake, and two databases must never
    share a folder. Its name stays the same within the process, so a later dbt step of the run reuses
    the parse; profiles.yml does not render it (dbt would parse again in every process), the
    ``duckdb_spill`` plugin reads it."""
    owner = f"dbt-{os.getpid()}-" + hashlib.sha1(lake.catalog.encode()).hexdigest()[:12]
    limits = duckdb_limits(memory_limit, owner)
    return {
        "DBT_PMX_CATALOG": lake.catalog,
        "DBT_PMX_DATA_PATH": lake.data_path,
        "DBT_PMX_MEMORY_LIMIT": limits["memory_limit"],
        "DBT_PMX_TEMP_DIRECTORY": limits["temp_directory"],
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def _dbt(*args: str) -> None:
    """The dbt command ``args`` on the project, quietly (its errors still print)."""
    subprocess.run(
        [DBT_EXECUTABLE, *args, "--quiet", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)],
        check=True,
        env={**os.environ, **dbt_env(load_config().lake, load_config().duckdb_memory)},
        cwd=DBT_DIR,
    )


def missing_packages() -> list[str]:
    """The packages of ``packages.yml`` that ``dbt_packages/`` lacks (or holds as a broken link, as a moved
    checkout leaves them: ``dbt deps`` links a local package by its absolute path)."""
    declared = yaml.safe_load((DBT_DIR / "packages.yml").read_text()).get("packages") or []
    missing = []
    for package in declared:
        if "local" not in package:
            raise ValueError(f"dbt_project/packages.yml: {package} is not vendored (`- local: <path>`); no hub here")
        name = yaml.safe_load((DBT_DIR / package["local"] / "dbt_project.yml").read_text())["name"]
        if not (DBT_DIR / "dbt_packages" / name / "dbt_project.yml").is_file():
            missing.append(name)
    return missing


def ensure_packages() -> None:
    """Install the vendored packages (``dbt deps``: from disk, no network) when ``dbt_packages/`` lacks one.
    dbt refuses to parse a project whose packages are not installed."""
    if missing_packages():
        _dbt("deps")


def _sources_newer_than(manifest: Path) -> bool:
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    files = [
        DBT_DIR / "dbt_project.yml",
        DBT_DIR / "profiles.yml",
        DBT_DIR / "packages.yml",
        *DBT_DIR.glob("models/**/*"),
        *DBT_DIR.glob("macros/**/*"),
        *DBT_DIR.glob("tests/**/*"),
        *DBT_DIR.glob("vendor/**/*"),
    ]
    return any(f.is_file() and f.stat().st_mtime > built for f in files)


def ensure_manifest() -> Path:
    """Install the vendored dbt packages if missing, and parse the dbt project when its manifest is missing
    or older than a model, macro, package or config file, so definitions always load and never describe a
    stale project."""
    manifest = dbt_project.manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    # one parse at a time: processes loading the definitions together (pytest -n) would
    # otherwise read a manifest another is still writing
    with open(manifest.parent / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_packages()
        if _sources_newer_than(manifest):
            _dbt("parse")
    return manifest


#: The folder dagster-dbt gives one dbt invocation: ``<step>-<run id[:7]>-<uuid[:7]>`` in a run,
#: ``<uuid[:7]>`` outside one.
INVOCATION_FOLDER = re.compile(r"^([\w-]+-[0-9a-f]{7}-)?[0-9a-f]{7}$")


def prune_invocation_folders(older_than_days: float, target: Path | None = None) -> list[Path]:
    """Delete dbt invocation folders under ``dbt_project/target`` last written ``older_than_days`` ago.

    A successful dbt step deletes its own (``transform/assets.py``); a failed one keeps its folder (the
    compiled SQL of what failed) until this removes it. Returns the folders deleted."""
    target = target or DBT_DIR / "target"
    cutoff = time.time() - older_than_days * 86400
    old = [
        folder
        for folder in (target.iterdir() if target.is_dir() else [])
        if folder.is_dir() and INVOCATION_FOLDER.match(folder.name) and folder.stat().st_mtime < cutoff
    ]
    for folder in old:
        shutil.rmtree(folder, ignore_errors=True)
    return old
