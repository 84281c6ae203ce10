"""The dbt project and its manifest (parsed on first use if missing)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from dagster_pmx.resources import DEFAULT_WAREHOUSE, REPO_ROOT

DBT_DIR = REPO_ROOT / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
# The dbt installed beside this interpreter, whether or not the venv is on PATH.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))


def dbt_env(warehouse_path: str | Path) -> dict[str, str]:
    """Variables a dbt process needs to write to ``warehouse_path`` (profiles.yml reads PMX_WAREHOUSE)."""
    return {"PMX_WAREHOUSE": str(Path(warehouse_path).resolve()), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def _sources_newer_than(manifest: Path) -> bool:
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    files = [
        DBT_DIR / "dbt_project.yml",
        DBT_DIR / "profiles.yml",
        *DBT_DIR.glob("models/**/*"),
        *DBT_DIR.glob("macros/**/*"),
        *DBT_DIR.glob("tests/**/*"),
    ]
    return any(f.is_file() and f.stat().st_mtime > built for f in files)


def ensure_manifest() -> Path:
    """Parse the dbt project when its manifest is missing or older than a model, macro or
    config file, so definitions always load and never describe a stale project."""
    manifest = dbt_project.manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    # one parse at a time: processes loading the definitions together (pytest -n) would
    # otherwise read a manifest another is still writing
    with open(manifest.parent / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _sources_newer_than(manifest):
            subprocess.run(
                [DBT_EXECUTABLE, "parse", "--quiet", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)],
                check=True,
                env={**os.environ, **dbt_env(os.environ.get("PMX_WAREHOUSE", DEFAULT_WAREHOUSE))},
                cwd=DBT_DIR,
            )
    return manifest
