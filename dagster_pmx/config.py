"""pmx's settings: code defaults, then a TOML file, then ``PMX_*`` environment variables.

The file is ``pmx.toml`` in the current directory, or the one ``$PMX_CONFIG`` names (which must
exist; a missing ``pmx.toml`` just leaves the defaults). Its settings sit in sections that only
group them (``[forecasting]``, ``[portfolio]``, …, :data:`SECTIONS`); each key is the setting's one
name, the same as its variable without ``PMX_`` (``[forecasting] train_window`` and
``PMX_TRAIN_WINDOW``). A variable that is set and not blank overrides the file. Relative paths in
the file are relative to the file's folder; in a variable, to the current directory.

An unknown key or section, a setting in the wrong section, a value of the wrong type or out of
range raises :class:`ValueError` naming the key and where it came from. API keys
(:data:`SECRETS`) are read from the environment only: the file refuses them.

``python -m dagster_pmx.config`` prints every setting, its value and where it came from.
docs/configuration.md documents each setting.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster_pmx.lake import DEFAULT_DUCKDB_MEMORY, Lake
from dagster_pmx.resources import DEFAULT_WAREHOUSE, PmxSettings
from python_models.governance.fallback import MODES as FALLBACK_MODES

#: Variable naming the configuration file.
CONFIG_VARIABLE = "PMX_CONFIG"
#: File read from the current directory when PMX_CONFIG is not set.
DEFAULT_FILE = "pmx.toml"

#: Sections of the file and the settings each holds; every setting is in exactly one.
SECTIONS: dict[str, tuple[str, ...]] = {
    "run": ("warehouse", "workers", "scheduler", "ticker_batch", "duckdb_memory", "full_refresh", "dbt_in_process"),
    "storage": ("catalog", "data_path", "keep_daily", "keep_weekly", "backup_dir"),
    "data": ("source", "csv_dir", "tickers", "benchmark", "start_date", "end_date"),
    "sources": ("alphavantage_function", "yahoo_base_url", "alphavantage_base_url", "finnhub_base_url"),
    "forecasting": ("models", "forecast_start", "train_window", "refit_every", "embargo"),
    "ensemble": ("ensemble_window", "ensemble_shrinkage", "ensemble_power", "ensemble_reweight_every"),
    "signals": ("signal_horizon", "governance_baseline"),
    "portfolio": (
        "kelly_fraction",
        "position_cap",
        "max_gross",
        "rebalance_every",
        "bond_duration",
        "barbell_target_vol",
        "drawdown_de_risk",
        "drawdown_stop",
        "drawdown_mode",
        "drawdown_cap_multiplier",
        "es_limit",
        "es_level",
    ),
    "backtest": ("execution", "cost_bps", "half_spread_bps", "impact_coefficient", "aum"),
    "paper": ("paper_strategies", "paper_start", "paper_lot_size", "paper_min_trade", "paper_participation"),
    "operations": ("freshness_sessions", "as_of", "alert_file", "alert_webhook"),
    "llm": (
        "llm_models",
        "llm_call_timeout",
        "llm_read_timeout",
        "llm_failover_rate",
        "llm_max_calls",
        "llm_history",
        "llm_fallback",
        "llm_fallback_backfill",
    ),
}

#: Settings that are not fields of :class:`PmxSettings` (read where they are used): type and default.
OPERATIONAL: dict[str, tuple[type, Any]] = {
    "warehouse": (str, str(DEFAULT_WAREHOUSE)),
    "catalog": (str, ""),  # empty: the SQLite catalog file `warehouse`; else sqlite:<file> or postgres:<dsn>
    "data_path": (str, ""),  # empty: <warehouse>.files/
    "keep_daily": (int, 30),  # run points kept: the last of each of this many days...
    "keep_weekly": (int, 12),  # ...and the last of each of this many weeks
    "backup_dir": (str, ""),  # empty: backups/ beside the warehouse
    "dbt_in_process": (bool, True),
    "duckdb_memory": (str, DEFAULT_DUCKDB_MEMORY),
    "alert_file": (str, ""),  # empty: $DAGSTER_HOME/alerts/run_failures.jsonl
    "alert_webhook": (str, ""),
    "alphavantage_function": (str, "TIME_SERIES_DAILY"),
    "yahoo_base_url": (str, ""),  # empty: the API's own
    "alphavantage_base_url": (str, ""),
    "finnhub_base_url": (str, ""),
}

#: Secrets: environment variables only, never the file, never printed.
SECRETS: dict[str, str] = {
    "alphavantage_api_key": "PMX_ALPHAVANTAGE_API_KEY",
    "finnhub_api_key": "PMX_FINNHUB_API_KEY",
    "llm_host": "PMX_LLM_HOST",  # an Ollama server's URL: it may carry credentials, and is never shown
}

#: Settings whose file value is a path, made relative to the file's folder.
PATHS = ("warehouse", "data_path", "backup_dir", "csv_dir", "alert_file")
#: Comma-separated settings; the file may give them as an array of strings instead.
LISTS = ("tickers", "models", "paper_strategies", "llm_models")
#: Words that mark a key as a secret however it is spelled.
SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password")

SOURCES = ("bundled", "csv", "yahoo", "alphavantage", "finnhub")
EXECUTIONS = ("close", "next_close", "next_open")
#: The drawdown control's modes (python_models.portfolio.risk_limits.MODES: a test keeps them equal).
DRAWDOWN_MODES = ("de_risk", "hard_cap")
ALPHAVANTAGE_FUNCTIONS = ("TIME_SERIES_DAILY", "TIME_SERIES_DAILY_ADJUSTED")


# -- checks: each returns what is wrong with a parsed value, or None ------------------------------


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be at least {low}"


def _within(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Callable[[Any], str | None]:
    def check(v: float) -> str | None:
        above = v > low if low_open else v >= low
        below = v < high if high_open else v <= high
        if above and below:
            return None
        return f"must lie in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"

    return check


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _timestamp(v: str) -> str | None:
    if not v:
        return None
    import pandas as pd

    try:
        parsed = pd.Timestamp(v)
    except (ValueError, TypeError):
        parsed = pd.NaT
    return "is not a date or time (ISO 8601, e.g. 2005-01-01)" if pd.isna(parsed) else None


def _scheduler(v: str) -> str | None:
    from python_models.evaluation.cluster import SCHEDULER_FILE_SUFFIX

    if not v or v.endswith(SCHEDULER_FILE_SUFFIX) or "://" in v:
        return None
    return "is not a Dask scheduler address (tcp://host:8786) or scheduler file (*.json)"


def _duckdb_size(v: str) -> str | None:
    """DuckDB's own parse of a memory size: what it accepts for ``SET memory_limit``."""
    import duckdb

    if "'" in v:
        return "is not a memory size (e.g. 2GB)"
    with duckdb.connect() as con:
        try:
            con.execute(f"set memory_limit = '{v}'")
        except duckdb.Error:
            return "is not a memory size DuckDB reads (e.g. 2GB, 512MB)"
    return None


def _url(v: str) -> str | None:
    return None if not v or v.startswith(("http://", "https://")) else "is not an http(s) URL"


CHECKS: dict[str, Callable[[Any], str | None]] = {
    "workers": _at_least(1),
    "scheduler": _scheduler,
    "ticker_batch": _at_least(1),
    "duckdb_memory": _duckdb_size,
    "keep_daily": _at_least(1),
    "keep_weekly": _at_least(0),
    "catalog": lambda v: (
        None if v == "" or v.startswith(("sqlite:", "postgres:")) else "must start with sqlite: or postgres:"
    ),  # noqa: E501
    "source": _one_of(*SOURCES),
    "start_date": _timestamp,
    "end_date": _timestamp,
    "alphavantage_function": _one_of(*ALPHAVANTAGE_FUNCTIONS),
    "yahoo_base_url": _url,
    "alphavantage_base_url": _url,
    "finnhub_base_url": _url,
    "forecast_start": _timestamp,
    "train_window": _at_least(1),
    "refit_every": _at_least(1),
    "embargo": _at_least(0),
    "ensemble_window": _at_least(1),
    "ensemble_shrinkage": _within(0, 1),
    "ensemble_power": _within(0, math.inf, high_open=True),
    "ensemble_reweight_every": _at_least(1),
    "signal_horizon": _at_least(1),
    "kelly_fraction": _within(0, 1, low_open=True),
    "position_cap": _within(0, 1, low_open=True),
    "max_gross": _within(0, math.inf, low_open=True, high_open=True),
    "rebalance_every": _at_least(1),
    "bond_duration": _at_least(0),
    "barbell_target_vol": _within(0, math.inf, low_open=True, high_open=True),
    "drawdown_de_risk": _within(0, 1, low_open=True, high_open=True),
    "drawdown_stop": _within(0, 1, low_open=True, high_open=True),
    "drawdown_mode": _one_of(*DRAWDOWN_MODES),
    "drawdown_cap_multiplier": _within(1, math.inf, high_open=True),
    "es_limit": _within(0, 1, high_open=True),
    "es_level": _within(0.5, 1, low_open=True, high_open=True),
    "llm_call_timeout": _within(0, math.inf, low_open=True, high_open=True),
    "llm_read_timeout": _within(0, math.inf, low_open=True, high_open=True),
    "llm_failover_rate": _at_least(0),
    "llm_max_calls": _at_least(0),
    "llm_history": _at_least(1),
    "llm_fallback": _one_of(*FALLBACK_MODES),
    "execution": _one_of(*EXECUTIONS),
    "cost_bps": _at_least(0),
    "half_spread_bps": _at_least(0),
    "impact_coefficient": _at_least(0),
    "aum": _within(0, math.inf, low_open=True, high_open=True),
    "paper_start": _timestamp,
    "paper_lot_size": _at_least(1),
    "paper_min_trade": _at_least(0),
    "paper_participation": _within(0, 1, low_open=True),
    "freshness_sessions": _at_least(0),
    "as_of": _timestamp,
    "alert_webhook": _url,
}


# -- the settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting: its name (the file's key), section, variable, type and default."""

    name: str
    section: str | None  # None: a PmxSettings field no section lists (settable by its variable only)
    kind: type
    default: Any

    @property
    def variable(self) -> str:
        return f"PMX_{self.name.upper()}"


def settings_spec() -> dict[str, Setting]:
    """Every setting by name: the fields of :class:`PmxSettings`, then :data:`OPERATIONAL`."""
    section_of = {name: section for section, names in SECTIONS.items() for name in names}
    spec = {
        name: Setting(name, section_of.get(name), info.annotation, info.default)
        for name, info in PmxSettings.model_fields.items()
    }
    for name, (kind, default) in OPERATIONAL.items():
        spec[name] = Setting(name, section_of[name], kind, default)
    return spec


def defaults() -> dict[str, Any]:
    """The code default of every setting."""
    return {name: s.default for name, s in settings_spec().items()}


@dataclass(frozen=True)
class PmxConfig:
    """The resolved settings.

    Attributes
    ----------
    values : dict
        Every setting (:func:`settings_spec`) by name, parsed and checked.
    origins : dict
        Where each value came from: ``"default"``, ``"<file> [section]"`` or ``"environment variable PMX_…"``.
    file : Path or None
        The file read, if any.
    secrets : dict
        The API keys set in the environment, by variable (not shown in the repr).
    """

    values: dict[str, Any]
    origins: dict[str, str]
    file: Path | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def warehouse(self) -> str:
        """Path of the warehouse's catalog file (the DuckLake's SQLite catalog by default)."""
        return self.values["warehouse"]

    @property
    def lake(self) -> Lake:
        """Where the warehouse's DuckLake catalog and data files are."""
        return Lake.at(self.values["warehouse"], self.values["catalog"], self.values["data_path"])

    @property
    def backup_dir(self) -> Path:
        """Folder ``pmx backup`` copies restore points to: ``backup_dir``, else ``backups/`` beside the warehouse."""
        return Path(self.values["backup_dir"] or Path(self.values["warehouse"]).parent / "backups")

    @property
    def duckdb_memory(self) -> str:
        """The memory limit of every DuckDB a run opens on the lake (its own and dbt's)."""
        return self.values["duckdb_memory"]

    @property
    def dbt_in_process(self) -> bool:
        """Whether dbt builds run in the Dagster process."""
        return self.values["dbt_in_process"]

    @property
    def alert_webhook(self) -> str:
        """URL the run-failure sensor posts to; empty for none."""
        return self.values["alert_webhook"]

    def alert_file(self, dagster_home: str | None = None) -> Path:
        """File the run-failure sensor appends to: ``alert_file``, else ``<DAGSTER_HOME>/alerts/run_failures.jsonl``."""
        home = dagster_home or os.environ.get("DAGSTER_HOME") or "."
        return Path(self.values["alert_file"] or Path(home) / "alerts" / "run_failures.jsonl")

    def settings_values(self) -> dict[str, Any]:
        """The :class:`PmxSettings` fields whose value is not the class default (the others are left unset,
        so a file of defaults, such as the shipped pmx.toml, builds the very resource no file does)."""
        fields = PmxSettings.model_fields
        return {name: self.values[name] for name in fields if self.values[name] != fields[name].default}

    def pmx_settings(self) -> PmxSettings:
        """The :class:`PmxSettings` resource these values configure."""
        return PmxSettings(**self.settings_values())

    def environ(self) -> dict[str, str]:
        """The source settings and API keys as ``PMX_*`` variables (what ``make_api_source`` reads)."""
        names = SECTIONS["sources"]
        return {f"PMX_{n.upper()}": str(self.values[n]) for n in names} | dict(self.secrets)


def _where(setting: Setting, origin: str) -> str:
    return f"setting {setting.name}, from {origin}"


def _parse_env(setting: Setting, raw: str) -> Any:
    """A variable's text as the setting's type; ValueError naming the variable."""
    var = setting.variable
    if setting.kind is bool:
        if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise ValueError(
                f"{var}={raw!r} is not a boolean (1/0, true/false, yes/no) ({_where(setting, 'the environment')})"
            )
        return raw.lower() in ("1", "true", "yes")
    if setting.kind in (int, float):
        try:
            return setting.kind(raw)
        except ValueError:
            raise ValueError(
                f"{var}={raw!r} is not a valid {setting.kind.__name__} ({_where(setting, 'the environment')})"
            ) from None
    return raw


def _parse_file(setting: Setting, value: Any, origin: str, folder: Path) -> Any:
    """A TOML value as the setting's type; ValueError naming the key and the file."""
    import datetime as dt

    def bad(problem: str) -> ValueError:
        return ValueError(f"{setting.name}={value!r} {problem} ({_where(setting, origin)})")

    kind = setting.kind
    if kind is bool:
        if not isinstance(value, bool):
            raise bad("is not a boolean (true or false)")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("is not an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("is not a number")
        return float(value)
    # strings: TOML dates and times are accepted as such, lists of names are joined with commas
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if setting.name in LISTS and isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise bad("is not a list of strings")
        return ",".join(v.strip() for v in value)
    if not isinstance(value, str):
        raise bad("is not a string" + (" or a list of strings" if setting.name in LISTS else ""))
    value = value.strip()
    if setting.name in PATHS and value:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else folder / path)
    return value


def _check(setting: Setting, value: Any, label: str, origin: str) -> None:
    problem = None
    if isinstance(value, float) and not math.isfinite(value):
        problem = "is not a finite number"
    elif setting.name in CHECKS:
        problem = CHECKS[setting.name](value)
    if problem:
        raise ValueError(f"{label} {problem} ({_where(setting, origin)})")


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _is_secret(key: str) -> bool:
    return key in SECRETS or any(word in key.lower() for word in SECRET_WORDS)


def _secret_error(key: str, where: str) -> ValueError:
    var = SECRETS.get(key, "the PMX_*_API_KEY variable")
    return ValueError(
        f"{key!r} in {where} is a secret and may not be written in a configuration file: "
        f"set the environment variable {var} instead"
    )


def _read_file(path: Path, spec: dict[str, Setting]) -> dict[str, tuple[Any, str]]:
    """The file's settings, ``{name: (value, origin)}``, parsed and checked; ValueError naming the key."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    folder = path.resolve().parent
    names = sorted(spec)
    found: dict[str, tuple[Any, str]] = {}
    for section, table in data.items():
        if not isinstance(table, dict):  # a key outside any section
            if _is_secret(section):
                raise _secret_error(section, str(path))
            if section in spec and spec[section].section:
                raise ValueError(f"key {section!r} in {path} must sit in its section [{spec[section].section}]")
            raise ValueError(f"unknown key {section!r} in {path} (settings sit in sections){_suggest(section, names)}")
        if section not in SECTIONS:
            if section in spec and spec[section].section:
                raise ValueError(
                    f"[{section}] in {path} is a setting, not a section: write it as a key of [{spec[section].section}]"
                )
            raise ValueError(
                f"unknown section [{section}] in {path}{_suggest(section, list(SECTIONS))} "
                f"(sections: {', '.join(SECTIONS)})"
            )
        for key, value in table.items():
            if _is_secret(key):
                raise _secret_error(key, f"[{section}] of {path}")
            if key not in SECTIONS[section]:
                if key in spec and spec[key].section:
                    raise ValueError(f"key {key!r} in [{section}] of {path} belongs in [{spec[key].section}]")
                hint = _suggest(key, names) or f" (keys of [{section}]: {', '.join(SECTIONS[section])})"
                raise ValueError(f"unknown key {key!r} in [{section}] of {path}{hint}")
            origin = f"{path} [{section}]"
            parsed = _parse_file(spec[key], value, origin, folder)
            _check(spec[key], parsed, f"{key}={value!r}", origin)
            found[key] = (parsed, origin)
    return found


def config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The file to read: ``$PMX_CONFIG`` (FileNotFoundError when it does not exist), else
    ``pmx.toml`` in the current directory when there is one, else None."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_VARIABLE, "").strip()
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{CONFIG_VARIABLE}={named!r}: no such file")
        return path
    default = Path(DEFAULT_FILE)
    return default.resolve() if default.is_file() else None


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> PmxConfig:
    """The settings: defaults, overridden by the file, overridden by ``PMX_*`` variables.

    Parameters
    ----------
    path : str or Path, optional
        The file to read (it must exist). Default: :func:`config_file` (``$PMX_CONFIG`` or ``./pmx.toml``).
    environ : mapping, optional
        The environment to read. Default: ``os.environ``.

    Returns
    -------
    PmxConfig

    Raises
    ------
    ValueError
        An unknown key or section, a secret in the file, or a bad value, naming the key and its source.
    FileNotFoundError
        ``path`` or ``$PMX_CONFIG`` names a file that does not exist.
    """
    env = os.environ if environ is None else environ
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"{file}: no such configuration file")
    else:
        file = config_file(env)
    spec = settings_spec()
    values = {name: s.default for name, s in spec.items()}
    origins = dict.fromkeys(spec, "default")
    if file is not None:
        for name, (value, origin) in _read_file(file, spec).items():
            values[name], origins[name] = value, origin
    for name, setting in spec.items():
        raw = env.get(setting.variable, "").strip()
        if not raw:
            continue
        origin = f"environment variable {setting.variable}"
        values[name] = _parse_env(setting, raw)
        _check(setting, values[name], f"{setting.variable}={raw!r}", "the environment")
        origins[name] = origin
    _check_together(values, origins)
    secrets = {var: env[var] for var in SECRETS.values() if env.get(var, "")}
    return PmxConfig(values=values, origins=origins, file=file, secrets=secrets)


def _check_together(values: dict[str, Any], origins: dict[str, str]) -> None:
    """Checks across settings."""

    def show(name: str) -> str:
        return f"{name}={values[name]!r} (from {origins[name]})"

    if not values["drawdown_de_risk"] < values["drawdown_stop"]:
        raise ValueError(f"{show('drawdown_de_risk')} must be below {show('drawdown_stop')}")
    if values["drawdown_mode"] == "hard_cap" and values["drawdown_cap_multiplier"] * values["drawdown_de_risk"] < 1:
        raise ValueError(
            f"{show('drawdown_cap_multiplier')} times {show('drawdown_de_risk')} must be at least 1 "
            "in the hard_cap mode (a full book at the peak)"
        )
    if values["end_date"]:
        import pandas as pd

        if pd.Timestamp(values["end_date"]) < pd.Timestamp(values["start_date"]):
            raise ValueError(f"{show('end_date')} is before {show('start_date')}")


def main(argv: list[str] | None = None) -> int:
    """Print every setting, its value and its source; note ``PMX_*`` variables that are no setting."""
    del argv
    config = load_config()
    print(f"# file: {config.file or 'none (defaults; PMX_CONFIG or ./pmx.toml)'}")
    spec = settings_spec()
    width = max(map(len, spec))
    for section, names in SECTIONS.items():
        print(f"[{section}]")
        for name in names:
            print(f"  {name:<{width}} = {config.values[name]!r:<32} # {config.origins[name]}")
    for var in SECRETS.values():
        print(f"# {var}: {'set' if var in config.secrets else 'not set'}")
    known = {s.variable for s in spec.values()} | set(SECRETS.values()) | {CONFIG_VARIABLE}
    for var in sorted(v for v in os.environ if v.startswith("PMX_") and v not in known):
        print(f"# note: {var} is not a pmx setting{_suggest(var, sorted(known))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
