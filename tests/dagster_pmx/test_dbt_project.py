"""The dbt project's packages are vendored (no network) and replace pmx's own look-alikes."""

import re
from importlib.metadata import version as installed_version

import yaml
from packaging.specifiers import SpecifierSet

from dagster_pmx.defs.transform.project import DBT_DIR, missing_packages

GENERIC_TEST = re.compile(r"{%-?\s*test\s+(\w+)\s*\(")


def _generic_tests(folder) -> set[str]:
    return {name for path in folder.rglob("*.sql") for name in GENERIC_TEST.findall(path.read_text())}


def test_every_package_is_vendored_installed_and_fits_the_installed_dbt():
    packages = yaml.safe_load((DBT_DIR / "packages.yml").read_text())["packages"]
    assert packages and all(set(p) == {"local"} for p in packages), "dbt's package hub is unreachable: vendor them"
    assert not missing_packages()  # loading the definitions ran `dbt deps`
    dbt_core = installed_version("dbt-core")
    for package in packages:
        project = yaml.safe_load((DBT_DIR / package["local"] / "dbt_project.yml").read_text())
        required = project["require-dbt-version"]
        spec = SpecifierSet(",".join(required) if isinstance(required, list) else required)
        assert dbt_core in spec, f"{project['name']} requires dbt {spec}; dbt-core {dbt_core} is installed"
        assert (DBT_DIR / package["local"] / "LICENSE").is_file()


def test_no_generic_test_of_pmx_duplicates_one_of_dbt_utils():
    ours = _generic_tests(DBT_DIR / "macros")
    theirs = _generic_tests(DBT_DIR / "vendor" / "dbt_utils" / "macros")
    assert {"expression_is_true", "unique_combination_of_columns", "accepted_range"} <= theirs
    assert ours == {"column_rules"}  # one query for all of a model's declared column rules: dbt_utils has none
    assert not ours & theirs


def _compiled_key_test(tmp_path, monkeypatch, *args: str) -> str:
    """The SQL dbt compiles for marts.forecasts' key test in ``dbt compile <args>`` (in this process)."""
    from dbt.cli.main import dbtRunner

    from dagster_pmx.defs.transform.dbt_cli import _close_duckdb
    from dagster_pmx.defs.transform.project import dbt_env
    from dagster_pmx.lake import Lake

    for name, value in dbt_env(Lake.at(tmp_path / "pmx.ducklake")).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(DBT_DIR)
    target = ["--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR), "--target-path", str(tmp_path / "t")]
    try:
        result = dbtRunner().invoke(["--quiet", "compile", *args, *target])
    finally:
        _close_duckdb()
    assert result.success, result.exception
    (node,) = [
        r.node for r in result.result.results if "unique_combination" in r.node.name and "forecasts" in r.node.name
    ]
    return node.compiled_code


def test_a_refresh_tests_the_rows_of_marts_forecasts_it_changed_and_anything_else_every_row(tmp_path, monkeypatch):
    # the daily refresh's dbt_signals: the view and its tests, without --full-refresh (macros/test_scope.sql)
    selected = _compiled_key_test(tmp_path, monkeypatch, "--select", "forecasts")
    assert "- interval 120 day" in selected and "group by model, ticker, asof_date, horizon" in selected
    for other in (
        ["--select", "forecasts", "--full-refresh"],
        ["--select", "test_name:unique_combination_of_columns"],
    ):
        assert "interval" not in _compiled_key_test(tmp_path, monkeypatch, *other)


def test_a_refresh_compiles_the_newest_stored_origin_into_its_tests_of_marts_forecasts(tmp_path, monkeypatch):
    from dagster_pmx.lake import Lake

    # the lake holds forecasts: the window's start is written in as a date, so DuckDB filters while it scans
    with Lake.at(tmp_path / "pmx.ducklake").open() as con:
        con.execute("create schema ml")
        con.execute(
            "create table ml.base_forecasts as "
            "select * from (values (timestamp '2024-03-01'), (timestamp '2024-03-28 00:00')) t(asof_date)"
        )
    selected = _compiled_key_test(tmp_path, monkeypatch, "--select", "forecasts")
    assert "asof_date >= date '2024-03-28' - interval 120 day" in selected
    assert "select max(asof_date)" not in selected


def test_the_maintenance_prunes_old_dbt_invocation_folders_and_nothing_else(tmp_path):
    import os
    import time

    from dagster_pmx.defs.transform.project import prune_invocation_folders

    old, recent = tmp_path / "dbt_features-1a2b3c4-5d6e7f8", tmp_path / "dbt_signals-1a2b3c4-0a0b0c0"
    outside_a_run = tmp_path / "9f8e7d6"
    others = [tmp_path / "docs", tmp_path / "run-1a2b3c4"]  # not an invocation's name
    for folder in [old, recent, outside_a_run, *others]:
        folder.mkdir()
        (folder / "partial_parse.msgpack").write_bytes(b"x")
    (tmp_path / "manifest.json").write_text("{}")
    ten_days_ago = time.time() - 10 * 86400
    for path in [old, outside_a_run, others[0], others[1], tmp_path / "manifest.json"]:
        os.utime(path, (ten_days_ago, ten_days_ago))
    assert sorted(prune_invocation_folders(older_than_days=7, target=tmp_path)) == [outside_a_run, old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["manifest.json", recent.name, "docs", "run-1a2b3c4"])
    assert prune_invocation_folders(older_than_days=7, target=tmp_path / "missing") == []


def test_the_uniqueness_test_on_duckdb_fails_on_the_keys_dbt_utils_own_query_finds(tmp_path, monkeypatch):
    import datetime

    import duckdb

    # dispatch puts pmx's macro first: one 64-bit hash of the key grouped, then only the repeated hashes' rows
    compiled = _compiled_key_test(tmp_path, monkeypatch, "--select", "forecasts", "--full-refresh")
    assert "hash(model, ticker, asof_date, horizon)" in compiled
    dbt_utils = (
        "select model, ticker, asof_date, horizon from pmx.marts.forecasts "
        "group by model, ticker, asof_date, horizon having count(*) > 1"
    )
    con = duckdb.connect()
    con.execute("attach ':memory:' as pmx")
    con.execute("create schema pmx.marts")
    rows = [
        ("garch", "AAA", "2024-01-02", 1),
        ("garch", "AAA", "2024-01-02", 5),
        ("garch", "BBB", "2024-01-02", 1),
        ("hmm", "AAA", "2024-01-02", 1),
    ]
    con.execute("create table pmx.marts.forecasts (model varchar, ticker varchar, asof_date date, horizon bigint)")
    con.executemany("insert into pmx.marts.forecasts values (?, ?, ?, ?)", rows)
    assert con.execute(compiled).fetchall() == []
    # a repeated key, and a repeated key with a NULL (dbt_utils' group by counts NULLs as equal): both found
    con.executemany(
        "insert into pmx.marts.forecasts values (?, ?, ?, ?)",
        [rows[2], ("hmm", None, "2024-01-03", 21), ("hmm", None, "2024-01-03", 21)],
    )
    found = sorted(con.execute(compiled).fetchall(), key=str)
    assert found == sorted(con.execute(dbt_utils).fetchall(), key=str) and len(found) == 2
    # hashes that collide: every row shares one, and the key itself still decides what repeats
    collided = compiled.replace("hash(", "0 * hash(")
    assert collided.count("0 * hash(") == 2
    assert sorted(con.execute(collided).fetchall(), key=str) == found
    con.execute("delete from pmx.marts.forecasts where model = 'hmm' and ticker is null")
    assert con.execute(collided).fetchall() == [("garch", "BBB", datetime.date(2024, 1, 2), 1)]
