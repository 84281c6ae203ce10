"""A dbt-duckdb plugin that gives dbt's DuckDB database the spill folder Dagster names for this process.

The folder is read from ``DBT_PMX_TEMP_DIRECTORY`` when the database is created, not written in
profiles.yml: dbt parses the project again whenever a value its profile renders changes, and the
folder must change from one process to the next, because two DuckDB databases must never share
one (each numbers its spill files from 0, and removes the folder when it closes). A run keeps dbt's
database open from one dbt step to the next while other runs' dbt steps may start on the same lake.
"""

from __future__ import annotations

import os
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin


class Plugin(BasePlugin):
    """Sets ``temp_directory`` in the config dbt-duckdb creates its database with."""

    def update_connection_config(self, creds, config: dict[str, Any]) -> None:  # noqa: ARG002 (dbt-duckdb's signature)
        folder = os.environ.get("DBT_PMX_TEMP_DIRECTORY")
        if folder:
            config["temp_directory"] = folder
