"""The dagster-dbt and dbt-duckdb internals ``dagster_pmx/defs/transform/dbt_cli.py`` relies on.

dagster-dbt offers no public hook to skip its version probe and adapter handle, or to run dbt in this
process, so ``PmxDbtCli`` overrides two private methods and swaps the ``subprocess`` module of dagster-dbt's
invocation. Each test below pins one of those internals: a failure names what changed and what to re-check.
"""

import ast
import inspect
import json
import os
import subprocess
from functools import cached_property
from importlib.metadata import version as installed_version

import pytest
from dagster_dbt import DbtCliResource
from dagster_dbt.core import dbt_cli_invocation
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation
from packaging import version

from dagster_pmx.defs.transform.dbt_cli import CHECKED_AGAINST, InProcessDbt, PmxDbtCli
from dagster_pmx.defs.transform.project import DBT_DIR, DBT_EXECUTABLE

RECHECK = (
    "dagster_pmx/defs/transform/dbt_cli.py relies on internals of dagster-dbt and dbt-duckdb, checked against "
    f"{CHECKED_AGAINST}. Re-check each override (this file lists them), then update CHECKED_AGAINST."
)


def _source_tree(obj) -> ast.AST:
    return ast.parse(inspect.cleandoc("\n" + inspect.getsource(obj)))


def _attributes_of(tree: ast.AST, *chain: str) -> set[str]:
    """The attributes read on the name chain (``self.process`` -> {"wait", "stdout", ...}) in ``tree``."""

    def dotted(node) -> tuple[str, ...]:
        if isinstance(node, ast.Name):
            return (node.id,)
        if isinstance(node, ast.Attribute):
            return (*dotted(node.value), node.attr)
        return ()

    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and dotted(n.value) == chain}


def _calls(tree: ast.AST, method: str) -> list[ast.Call]:
    """The calls of ``<something>.method(...)`` in ``tree``."""
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == method
    ]


@pytest.mark.parametrize("package", sorted(CHECKED_AGAINST))
def test_the_installed_versions_are_those_the_overrides_were_checked_against(package):
    installed = installed_version(package)
    checked = CHECKED_AGAINST[package]
    # an exact release ("0.29.27"), or a minor series ("1.11" admits 1.11.x)
    series = checked.count(".") == 1 and installed.startswith(f"{checked}.")
    assert installed == checked or series, f"{package} {installed} is installed. {RECHECK}"


def test_the_version_probe_is_the_private_cached_property_cli_reads():
    assert isinstance(inspect.getattr_static(DbtCliResource, "_cli_version"), cached_property), RECHECK
    assert isinstance(inspect.getattr_static(PmxDbtCli, "_cli_version"), cached_property)
    assert "_cli_version" in _attributes_of(_source_tree(DbtCliResource.cli), "self"), RECHECK
    probe = PmxDbtCli(project_dir=str(DBT_DIR), dbt_executable=DBT_EXECUTABLE)._cli_version
    assert probe == version.parse(installed_version("dbt-core")) and probe.major < 2  # dbt-core, not dbt Fusion


def test_the_adapter_handle_is_the_private_method_cli_calls_with_the_args():
    parent = inspect.signature(DbtCliResource._initialize_dbt_core_adapter)
    assert list(parent.parameters) == ["self", "args"], RECHECK
    assert list(inspect.signature(PmxDbtCli._initialize_dbt_core_adapter).parameters) == ["self", "args"]
    calls = _calls(_source_tree(DbtCliResource.cli), "_initialize_dbt_core_adapter")
    assert len(calls) == 1 and len(calls[0].args) == 1 and not calls[0].keywords, RECHECK
    # without a handle dagster-dbt skips the post-run metadata queries pmx does not ask for
    assert "adapter" in inspect.signature(DbtCliInvocation.run).parameters, RECHECK


def test_the_invocation_starts_dbt_through_its_modules_subprocess_with_what_the_shim_provides():
    assert dbt_cli_invocation.subprocess is subprocess, RECHECK
    module = ast.parse(inspect.getsource(dbt_cli_invocation))
    # the shim PmxDbtCli.cli puts in the module's place has Popen, PIPE and STDOUT only
    assert _attributes_of(module, "subprocess") <= {"Popen", "PIPE", "STDOUT"}, RECHECK
    popens = _calls(_source_tree(DbtCliInvocation.run), "Popen")
    assert len(popens) == 1 and not popens[0].args, RECHECK
    accepted = set(inspect.signature(InProcessDbt).parameters) - {"_"}
    keywords = {k.arg for k in popens[0].keywords}
    # InProcessDbt takes args, env and cwd (stdout/stderr go to its own buffer through **_)
    assert {"args", "env", "cwd"} <= keywords <= accepted | {"stdout", "stderr"}, RECHECK


def test_the_invocation_reads_only_the_popen_interface_in_process_dbt_imitates():
    used = _attributes_of(ast.parse(inspect.getsource(dbt_cli_invocation)), "self", "process")
    provided = {"args", "returncode", "stdout", "wait", "poll", "send_signal"}
    assert used <= provided, f"DbtCliInvocation now reads process.{sorted(used - provided)}. {RECHECK}"


def test_dbt_duckdb_keeps_its_process_wide_environment_where_close_duckdb_closes_it():
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    assert "_ENV" in vars(DuckDBConnectionManager), RECHECK
    assert callable(getattr(DuckDBConnectionManager, "close_all_connections", None)), RECHECK


def test_dbt_runner_and_its_event_callbacks_are_there():
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    assert "callbacks" in inspect.signature(dbtRunner).parameters, RECHECK
    assert callable(msg_to_dict)


def test_the_behavior_flag_source_is_the_static_method_the_cheap_walk_replaces_and_it_names_the_same_module():
    from dbt_common.behavior_flags import Behavior, BehaviorFlagRendered

    from dagster_pmx.defs.transform import dbt_cli

    assert isinstance(vars(BehaviorFlagRendered).get("_default_source"), staticmethod), RECHECK
    assert "_default_source()" in inspect.getsource(BehaviorFlagRendered.__init__), RECHECK
    saved = vars(BehaviorFlagRendered)["_default_source"]
    try:
        expected = Behavior([{"name": "f", "default": False, "description": "d"}], {}).f
        dbt_cli._patch_behavior_flag_source()
        assert vars(BehaviorFlagRendered)["_default_source"].__func__ is dbt_cli._behavior_flag_source
        patched = Behavior([{"name": "f", "default": False, "description": "d"}], {}).f
    finally:
        BehaviorFlagRendered._default_source = saved
    # the module that created the flags: this one, as dbt-common's inspect.stack() walk finds it
    assert patched._behavior_change_event.flag_source == expected._behavior_change_event.flag_source == __name__


def test_in_process_dbt_runs_with_neither_of_dbts_loggers_and_still_reports_every_event(tmp_path):
    from dbt_common.events.functions import get_event_manager

    from dagster_pmx.defs.transform.dbt_cli import DBT_GLOBAL_FLAGS
    from dagster_pmx.defs.transform.project import dbt_env
    from dagster_pmx.lake import Lake

    env = {**dbt_env(Lake.at(str(tmp_path / "w.ducklake"))), "PATH": "/usr/bin:/bin"}
    run = InProcessDbt([DBT_EXECUTABLE, *DBT_GLOBAL_FLAGS, "ls", "--select", "stg_prices"], env=env, cwd=DBT_DIR)
    assert run.wait() == 0
    # dbt refuses a flag given both before and after the subcommand, so the global flags are rewritten
    assert get_event_manager().loggers == [], "dbt formats every event for a logger that drops it"
    # the callback still hands dagster-dbt the events: here the listed model
    assert "stg_prices" in run.stdout.read().decode()


def test_setup_manifest_parses_through_the_name_the_wrapper_replaces_unless_handed_a_manifest():
    from dbt.cli import requires

    tree = _source_tree(requires.setup_manifest)
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "parse_manifest" in called and callable(requires.parse_manifest), RECHECK
    # the parse only when the context holds no manifest: dbtRunner(manifest=...) puts one there
    assert 'ctx.obj.get("manifest") is None' in inspect.getsource(requires.setup_manifest), RECHECK


@pytest.mark.slow  # a speed or memory behaviour: `make test-slow` (the default suite's 15-minute budget)
def test_a_later_in_process_invocation_reuses_the_parse_until_a_project_file_changes(tmp_path, monkeypatch):
    import shutil

    from dbt.cli import requires

    from dagster_pmx.defs.transform import dbt_cli
    from dagster_pmx.defs.transform.dbt_cli import DBT_GLOBAL_FLAGS
    from dagster_pmx.defs.transform.project import dbt_env
    from dagster_pmx.lake import Lake

    project = tmp_path / "project"
    shutil.copytree(DBT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"), symlinks=True)
    parses = []
    parse = requires.parse_manifest

    def counted(*args, **kwargs):
        parses.append(1)
        return parse(*args, **kwargs)

    monkeypatch.setattr(requires, "parse_manifest", counted)
    monkeypatch.setattr(dbt_cli, "_parsed", {})
    env = {**dbt_env(Lake.at(str(tmp_path / "w.ducklake"))), "PATH": "/usr/bin:/bin"}

    def listed(target: str) -> str:
        command = [DBT_EXECUTABLE, *DBT_GLOBAL_FLAGS, "ls", "--select", "stg_prices"]
        run = InProcessDbt(command, env={**env, "DBT_TARGET_PATH": str(tmp_path / target)}, cwd=project)
        assert run.wait() == 0
        return run.stdout.read().decode()

    assert "stg_prices" in listed("a") and len(parses) == 1
    assert "stg_prices" in listed("b") and len(parses) == 1  # another target folder, the same project: reused
    dbt_cli._parsed.clear()  # a new process: the manifest the last one kept on disk
    assert (project / dbt_cli.MANIFEST_CACHE).is_file()
    assert "stg_prices" in listed("b") and len(parses) == 1
    dbt_cli._parsed.clear()  # and what it kept compiles (a ref and a source need the manifest's lookups)
    query = "select * from {{ ref('stg_prices') }} join {{ source('raw', 'prices') }} using (ticker, date)"
    command = [DBT_EXECUTABLE, *DBT_GLOBAL_FLAGS, "compile", "--inline", query]
    # it connects: DuckDB finds the lake's extensions, installed from their packages, under HOME
    home = {"HOME": os.environ["HOME"], "DBT_TARGET_PATH": str(tmp_path / "compiled")}
    run = InProcessDbt(command, env={**env, **home}, cwd=project)
    out = run.stdout.read().decode()
    assert run.wait() == 0 and len(parses) == 1, out[-3000:]
    compiled = [json.loads(line)["data"] for line in out.splitlines() if '"CompiledNode"' in line]
    assert (
        '"pmx"."staging"."stg_prices"' in compiled[0]["compiled"] and '"pmx"."raw"."prices"' in compiled[0]["compiled"]
    )
    model = project / "models" / "staging" / "stg_prices.sql"
    model.write_text(model.read_text() + "\n-- changed\n")
    assert "stg_prices" in listed("c") and len(parses) == 2  # a changed file: parsed again
    dbt_cli._parsed.clear()
    assert "stg_prices" in listed("d") and len(parses) == 2  # and kept again
    dbt_cli._parsed.clear()
    (project / dbt_cli.MANIFEST_CACHE).write_bytes(b"not a pickle")
    assert "stg_prices" in listed("e") and len(parses) == 3  # a damaged file: dbt parses
