"""The configuration file and its precedence: defaults < pmx.toml < PMX_* variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dagster_pmx import config
from dagster_pmx.config import SECRETS, SECTIONS, defaults, load_config, settings_spec
from dagster_pmx.resources import DEFAULT_WAREHOUSE, REPO_ROOT, PmxSettings

SHIPPED = REPO_ROOT / "pmx.toml"
DOCS = REPO_ROOT / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pmx.toml"
    path.write_text(text)
    return path


@pytest.fixture
def clean_env(monkeypatch, tmp_path) -> None:
    """No PMX_* variable set, and a current directory without pmx.toml."""
    import os

    for var in [v for v in os.environ if v.startswith("PMX_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


def test_every_setting_sits_in_exactly_one_section():
    listed = [name for names in SECTIONS.values() for name in names]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(settings_spec())
    assert all(s.section for s in settings_spec().values())


def test_no_file_gives_the_class_defaults(clean_env):
    loaded = load_config()
    assert loaded.file is None and set(loaded.origins.values()) == {"default"}
    assert loaded.values == defaults()
    assert loaded.settings_values() == {}
    assert PmxSettings.from_env() == PmxSettings()
    assert loaded.warehouse == str(DEFAULT_WAREHOUSE) and loaded.dbt_in_process


def test_the_shipped_file_holds_every_setting_at_its_default():
    loaded = load_config(SHIPPED, environ={})
    assert set(loaded.origins.values()) == {f"{SHIPPED} [{section}]" for section in SECTIONS}
    assert loaded.values == defaults()
    assert loaded.pmx_settings() == PmxSettings()


def test_file_values_apply(clean_env, tmp_path):
    (tmp_path / "data").mkdir()
    write(
        tmp_path,
        """
[run]
warehouse = "w/x.ducklake"
dbt_in_process = false
[data]
tickers = ["aapl", "msft"]
end_date = 2012-06-29
csv_dir = "data"
[forecasting]
train_window = 500
[portfolio]
kelly_fraction = 1
[backtest]
execution = "next_open"
[operations]
alert_webhook = "https://hooks.example/x"
[sources]
yahoo_base_url = "http://127.0.0.1:9"
""",
    )
    loaded = load_config()
    assert loaded.file == (tmp_path / "pmx.toml").resolve()
    s = PmxSettings.from_env()
    assert s.ticker_list == ["AAPL", "MSFT"] and s.end_date == "2012-06-29" and s.train_window == 500
    assert s.kelly_fraction == 1.0 and isinstance(s.kelly_fraction, float) and s.execution == "next_open"
    assert s.csv_dir == str(tmp_path.resolve() / "data")  # relative to the file's folder
    assert loaded.warehouse == str(tmp_path.resolve() / "w" / "x.ducklake") and not loaded.dbt_in_process
    assert loaded.alert_webhook == "https://hooks.example/x"
    assert loaded.environ()["PMX_YAHOO_BASE_URL"] == "http://127.0.0.1:9"
    assert loaded.origins["train_window"] == f"{loaded.file} [forecasting]"
    assert loaded.origins["benchmark"] == "default"


def test_environment_overrides_the_file(clean_env, tmp_path, monkeypatch):
    write(tmp_path, "[forecasting]\ntrain_window = 500\nrefit_every = 21\n[run]\nfull_refresh = true\n")
    monkeypatch.setenv("PMX_TRAIN_WINDOW", "300")
    monkeypatch.setenv("PMX_FULL_REFRESH", "no")
    monkeypatch.setenv("PMX_REFIT_EVERY", "  ")  # blank: unset, the file's value stands
    loaded = load_config()
    assert (
        loaded.values["train_window"] == 300
        and loaded.origins["train_window"] == "environment variable PMX_TRAIN_WINDOW"
    )
    assert loaded.values["refit_every"] == 21 and loaded.values["full_refresh"] is False
    s = PmxSettings.from_env()
    assert (s.train_window, s.refit_every, s.full_refresh) == (300, 21, False)


def test_pmx_config_names_the_file(clean_env, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere.toml"
    other.write_text('[data]\nbenchmark = "RW0"\n')
    write(tmp_path, '[data]\nbenchmark = "IGNORED"\n')
    monkeypatch.setenv("PMX_CONFIG", str(other))
    assert PmxSettings.from_env().benchmark == "RW0"


def test_a_missing_pmx_config_file_is_an_error(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("PMX_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match="PMX_CONFIG=.*nope.toml.*no such file"):
        load_config()
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        PmxSettings.from_env()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[forecasting]\ntrian_window = 5\n",
            r"unknown key 'trian_window' in \[forecasting\] of .*; did you mean 'train_window'",
        ),
        ("[portfolo]\nkelly_fraction = 1\n", r"unknown section \[portfolo\] in .*; did you mean 'portfolio'"),
        ("[portfolio]\ntrain_window = 5\n", r"key 'train_window' in \[portfolio\] of .* belongs in \[forecasting\]"),
        ("train_window = 5\n", r"key 'train_window' in .* must sit in its section \[forecasting\]"),
        ("[backtest]\ncost_bp = 5\n", "unknown key 'cost_bp' in .*; did you mean 'cost_bps'"),
    ],
)
def test_an_unknown_key_is_named_with_a_suggestion(clean_env, tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as caught:
        load_config()
    assert str(path.resolve()) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[forecasting]\nrefit_every = "weekly"\n', "refit_every='weekly' is not an integer"),
        ("[forecasting]\nrefit_every = 2.5\n", "refit_every=2.5 is not an integer"),
        ("[forecasting]\nembargo = -1\n", "embargo=-1 must be at least 0"),
        ("[run]\nfull_refresh = 1\n", "full_refresh=1 is not a boolean"),
        ('[backtest]\nexecution = "tomorrow"\n', "execution='tomorrow' must be one of close, next_close, next_open"),
        ("[portfolio]\nkelly_fraction = 1.5\n", r"kelly_fraction=1.5 must lie in \(0, 1\]"),
        ("[portfolio]\nkelly_fraction = 0\n", r"kelly_fraction=0 must lie in \(0, 1\]"),
        ('[data]\nstart_date = "someday"\n', "start_date='someday' is not a date"),
        ("[data]\ntickers = [1, 2]\n", r"tickers=\[1, 2\] is not a list of strings"),
        ('[operations]\nalert_webhook = "hooks.example"\n', "alert_webhook='hooks.example' is not an http"),
        ('[run]\nscheduler = "localhost"\n', "scheduler='localhost' is not a Dask scheduler address"),
        ('[run]\nduckdb_memory = "lots"\n', "duckdb_memory='lots' is not a memory size DuckDB reads"),
    ],
)
def test_a_bad_file_value_names_the_key_and_the_file(clean_env, tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as caught:
        load_config()
    key = message.split("=")[0]
    assert f"setting {key}, from {path.resolve()} [" in str(caught.value)


@pytest.mark.parametrize(
    ("var", "raw", "message"),
    [
        ("PMX_REFIT_EVERY", "weekly", "PMX_REFIT_EVERY='weekly' is not a valid int"),
        ("PMX_FULL_REFRESH", "sometimes", "PMX_FULL_REFRESH='sometimes' is not a boolean"),
        ("PMX_TRAIN_WINDOW", "-5", "PMX_TRAIN_WINDOW='-5' must be at least 1"),
        ("PMX_KELLY_FRACTION", "2", r"PMX_KELLY_FRACTION='2' must lie in \(0, 1\]"),
        ("PMX_COST_BPS", "nan", "PMX_COST_BPS='nan' is not a finite number"),
        ("PMX_SOURCE", "bloomberg", "PMX_SOURCE='bloomberg' must be one of bundled, csv"),
        ("PMX_DBT_IN_PROCESS", "maybe", "PMX_DBT_IN_PROCESS='maybe' is not a boolean"),
    ],
)
def test_a_bad_variable_names_the_variable_and_the_setting(clean_env, monkeypatch, var, raw, message):
    monkeypatch.setenv(var, raw)
    with pytest.raises(ValueError, match=message) as caught:
        load_config()
    assert f"(setting {var[4:].lower()}, from the environment)" in str(caught.value)


def test_settings_are_checked_together(clean_env, tmp_path, monkeypatch):
    path = write(tmp_path, "[portfolio]\ndrawdown_de_risk = 0.3\n")
    with pytest.raises(
        ValueError, match=r"drawdown_de_risk=0.3 \(from .*\) must be below drawdown_stop=0.25"
    ) as caught:
        load_config()
    assert str(path.resolve()) in str(caught.value)
    monkeypatch.setenv("PMX_END_DATE", "1980-01-01")
    monkeypatch.setenv("PMX_DRAWDOWN_DE_RISK", "0.1")
    with pytest.raises(
        ValueError, match="end_date='1980-01-01' .*environment variable PMX_END_DATE.* is before start_date"
    ):
        load_config()


@pytest.mark.parametrize("key", ["alphavantage_api_key", "finnhub_api_key", "my_token"])
def test_a_secret_in_the_file_is_refused(clean_env, tmp_path, key):
    write(tmp_path, f'[sources]\n{key} = "abc123"\n')
    with pytest.raises(ValueError, match=f"'{key}' in .* is a secret .* environment variable") as caught:
        load_config()
    assert "abc123" not in str(caught.value)
    write(tmp_path, f'{key} = "abc123"\n')
    with pytest.raises(ValueError, match="is a secret"):
        load_config()


def test_secrets_come_from_the_environment_and_stay_out_of_the_repr(clean_env, monkeypatch):
    monkeypatch.setenv("PMX_ALPHAVANTAGE_API_KEY", "k3y")
    loaded = load_config()
    assert loaded.environ()["PMX_ALPHAVANTAGE_API_KEY"] == "k3y" and "k3y" not in repr(loaded)
    assert "PMX_FINNHUB_API_KEY" not in loaded.environ()


def test_invalid_toml_names_the_file(clean_env, tmp_path):
    path = write(tmp_path, "[forecasting\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path.resolve()))}: not valid TOML"):
        load_config()


def test_operational_settings_reach_their_users(clean_env, tmp_path, monkeypatch):
    from dagster_pmx.definitions import default_resources
    from dagster_pmx.defs.ingest.sources import make_api_source
    from dagster_pmx.defs.operations.sensors import alert_file

    write(
        tmp_path,
        '[run]\nwarehouse = "here.ducklake"\ndbt_in_process = false\nduckdb_memory = "3GB"\n'
        '[operations]\nalert_file = "alerts.jsonl"\n'
        '[sources]\nalphavantage_function = "TIME_SERIES_DAILY_ADJUSTED"\n'
        'alphavantage_base_url = "http://127.0.0.1:9"\n[data]\nbenchmark = "RW0"\n',
    )
    resources = default_resources()
    assert resources["warehouse"].path == str(tmp_path.resolve() / "here.ducklake")
    assert resources["warehouse"].memory_limit == "3GB"
    assert resources["dbt"].in_process is False and resources["settings"].benchmark == "RW0"
    assert alert_file() == tmp_path.resolve() / "alerts.jsonl"
    monkeypatch.setenv("PMX_ALPHAVANTAGE_API_KEY", "k3y")
    client = make_api_source("alphavantage").client
    assert client.function == "TIME_SERIES_DAILY_ADJUSTED" and client.base_url == "http://127.0.0.1:9"
    assert client.api_key == "k3y"
    monkeypatch.setenv("PMX_WAREHOUSE", "env.ducklake")  # a variable is relative to the current directory
    monkeypatch.setenv("PMX_ALERT_FILE", "/tmp/elsewhere.jsonl")
    assert default_resources()["warehouse"].path == "env.ducklake"
    assert alert_file() == Path("/tmp/elsewhere.jsonl")


def test_without_alert_settings_failures_go_to_dagster_home(clean_env, monkeypatch, tmp_path):
    from dagster_pmx.defs.operations.sensors import alert_file

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert alert_file() == tmp_path / "home" / "alerts" / "run_failures.jsonl"
    assert load_config().alert_webhook == ""


def test_every_setting_is_documented_once():
    docs = DOCS.read_text()
    rows = [line for line in docs.splitlines() if line.startswith("| `")]
    for name, setting in settings_spec().items():
        mine = [row for row in rows if row.startswith(f"| `{name}` |")]
        assert len(mine) == 1, f"{name}: {len(mine)} rows in {DOCS.name}"
        assert f"`{setting.variable}`" in mine[0], f"{name}: variable {setting.variable} missing from its row"
        assert f"### `[{setting.section}]`" in docs
    for var in SECRETS.values():
        assert f"`{var}`" in docs
    assert "PMX_CONFIG" in docs


def test_the_module_prints_the_settings(clean_env, capsys, monkeypatch):
    monkeypatch.setenv("PMX_TRAIN_WINDWO", "5")
    assert config.main([]) == 0
    out, err = capsys.readouterr()
    assert "train_window" in out and "environment" not in out.split("train_window")[1].splitlines()[0]
    assert "PMX_TRAIN_WINDWO is not a pmx setting; did you mean 'PMX_TRAIN_WINDOW'" in err


def test_the_drawdown_modes_are_the_librarys_and_the_hard_cap_needs_a_full_book_at_the_peak(clean_env, monkeypatch):
    from python_models.portfolio.risk_limits import MODES

    assert config.DRAWDOWN_MODES == MODES
    monkeypatch.setenv("PMX_DRAWDOWN_MODE", "hard_cap")
    assert load_config().values["drawdown_mode"] == "hard_cap"
    monkeypatch.setenv("PMX_DRAWDOWN_CAP_MULTIPLIER", "5")
    with pytest.raises(ValueError, match=r"drawdown_cap_multiplier=5.0 .* must be at least 1"):
        load_config()
