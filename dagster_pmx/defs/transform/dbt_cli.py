"""dagster-dbt's CLI resource, without the fixed costs pmx does not need.

``DbtCliResource`` spends seconds around every ``dbt build`` before dbt does any work, which
matters to the daily refresh (two dbt steps of a job that should take seconds):

* it asks the ``dbt`` executable for its version (``dbt --version``, a new Python process
  importing dbt: ~2.5 s) — the installed dbt-core's version is read from its package metadata;
* it opens an in-process dbt adapter (loading the project's macros, 2–3 s) only to fetch row
  counts and column metadata after the run, which pmx does not ask for — none is opened, and
  dagster-dbt then skips that work by design;
* it starts dbt as a subprocess, which imports dbt again (~2 s) — with ``in_process`` (the
  default) the build runs in this process through ``dbtRunner``, dbt's documented programmatic
  entry point, and dagster-dbt reads its events exactly as it reads the subprocess's JSON log;
* each build loads the project's manifest again (~0.5 s from dbt's partial-parse file) — in this
  process a later build of the same project files, vars and environment is handed the manifest
  the first one parsed (``dbtRunner(manifest=...)``, dbt's documented way to reuse one), so a run
  with two or three dbt steps parses once;
* each build opens a DuckDB database and attaches the lake again, and its first query reads the
  lake's catalog (0.3–0.5 s) — in a run the database stays open from one dbt step to the next
  (dbt-duckdb keeps one per profile) and closes when the run ends or a build fails.

The in-process path swaps the ``subprocess`` module dagster-dbt's invocation uses for the
length of one ``cli`` call (dagster-dbt has no hook for a runner of its own); ``in_process:
false`` (``PMX_DBT_IN_PROCESS=0``) restores the plain subprocess. In this process two more of
dbt's own costs go (each measured with py-spy on a daily refresh, docs/benchmarks.md): its two
loggers, which format every event as JSON only to drop it (the events reach dagster-dbt through
a callback instead), and dbt-common's ``inspect.stack()`` walk when the adapter declares its
behavior flags (replaced by an equivalent walk that reads no source files).

Neither dagster-dbt nor dbt has a public hook for these, so this module relies on their internals:
``DbtCliResource._cli_version`` and ``DbtCliResource._initialize_dbt_core_adapter`` (overridden),
the ``subprocess`` module of ``dagster_dbt.core.dbt_cli_invocation`` and the ``Popen`` interface
``DbtCliInvocation`` reads (imitated by ``InProcessDbt``), dbt-duckdb's
``DuckDBConnectionManager._ENV``, dbt-common's ``BehaviorFlagRendered._default_source`` and the
``parse_manifest`` name ``dbt.cli.requires`` calls (wrapped for one invocation, to keep what it parsed).
``tests/dagster_pmx/test_dbt_cli_overrides.py`` guards each one:
it fails, naming what to re-check, when the installed versions differ from ``CHECKED_AGAINST``
or when an internal is no longer there in the shape relied upon.
"""

import contextlib
import dataclasses
import functools
import io
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import orjson
from dagster_dbt import DbtCliResource
from dagster_dbt.core import dbt_cli_invocation
from packaging import version
from pydantic import PrivateAttr

#: The versions whose internals this module was checked against (an exact dagster-dbt release; dbt-core's
#: and dbt-duckdb's minor series). Another version: re-check each override, then update this.
CHECKED_AGAINST = {"dagster-dbt": "0.29.27", "dbt-core": "1.11", "dbt-duckdb": "1.11"}

#: dbt's own log file only for errors: at its default (debug, every statement) writing it costs 1–2 s
#: a build; the events at info level and above, errors included, are in the Dagster run's logs.
DBT_GLOBAL_FLAGS = ["--log-level-file", "error", "--no-write-json"]

#: In this process dbt's events reach dagster-dbt through a callback, so neither of dbt's own loggers is
#: needed — and each formats every event as JSON before its level filter drops it (a py-spy profile of a
#: refresh, docs/benchmarks.md).
#: Errors are in the Dagster run's logs (dagster-dbt raises with their text), not in dbt.log.
IN_PROCESS_LOGGING = ["--log-level", "none", "--log-level-file", "none"]


#: The manifest the last in-process dbt invocation parsed, under the key of what it was parsed from
#: (:func:`_manifest_key`); one is kept, as a run builds one project.
_parsed: dict[tuple, object] = {}

#: Folders of the dbt project that hold no input of its parse.
_NOT_PARSED = {"target", "logs"}
#: Variables set anew for every invocation or process, which the parse does not read: dagster-dbt's target
#: folder for the invocation, and the process's own DuckDB spill folder (read by a dbt-duckdb plugin when
#: the database opens, not rendered in the profile: ``duckdb_spill.py``).
_PER_INVOCATION = {"DBT_TARGET_PATH", "DBT_LOG_PATH", "DBT_PMX_TEMP_DIRECTORY"}
#: Where the last parsed manifest is kept for the next process, pickled with its key, in the project's
#: target folder beside dbt's own partial-parse file.
MANIFEST_CACHE = Path("target") / "pmx_manifest.pickle"


def _manifest_key(args: Sequence[str], env: dict[str, str], cwd) -> tuple:
    """What a parse of the project in ``cwd`` depends on: every project file's path, size and
    modification time, the ``--vars`` given, and the dbt and pmx variables of the environment."""
    files = []
    for folder, dirs, names in os.walk(cwd):
        if folder == str(cwd):
            dirs[:] = [d for d in dirs if d not in _NOT_PARSED]
        for name in names:
            stat = os.stat(os.path.join(folder, name))
            files.append((folder, name, stat.st_size, stat.st_mtime_ns))
    given = list(args)
    cli_vars = given[given.index("--vars") + 1] if "--vars" in given[:-1] else None
    environment = tuple(
        sorted((k, v) for k, v in env.items() if k.startswith(("DBT_", "PMX_")) and k not in _PER_INVOCATION)
    )
    versions = (sys.version, installed_version("dbt-core"), installed_version("dbt-duckdb"))
    return (str(cwd), versions, cli_vars, environment, tuple(sorted(files)))


def _kept_manifest(key: tuple, cwd) -> object | None:
    """The manifest parsed from ``key``: this process's, or the one an earlier process kept on disk.

    dbt's own partial parse rebuilds the manifest from ``partial_parse.msgpack`` and checks every project
    file again in each new process; rebuilding the manifest an earlier process parsed from the same files,
    variables and versions saved ~0.2 s of a daily refresh's first dbt step (docs/benchmarks.md)."""
    if key in _parsed:
        return _parsed[key]
    try:
        with open(Path(cwd) / MANIFEST_CACHE, "rb") as file:
            stored_key, state = pickle.load(file)
        if stored_key != key:
            return None
        manifest = _manifest_from(state)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError, TypeError):
        return None  # none kept yet, or kept by other code: dbt parses
    _parsed.clear()
    _parsed[key] = manifest
    return manifest


def _manifest_state(manifest) -> dict:
    """A manifest's parsed contents: its dataclass fields less the private ones (lookups and caches it
    rebuilds when first asked, its parse bookkeeping, a lock).

    Not the manifest itself: dbt-core 1.11's ``Manifest.__reduce_ex__`` lists its fields positionally
    and omits two (``fixtures`` and ``_saved_query_lookup``), so an unpickled manifest has its lookups in
    the wrong fields and fails when a model is compiled ("RefableLookup.find() missing ... 'manifest'")."""
    return {f.name: getattr(manifest, f.name) for f in dataclasses.fields(manifest) if not f.name.startswith("_")}


def _manifest_from(state: dict):
    from dbt.contracts.graph.manifest import Manifest

    return Manifest(**state)


def _keep_manifest(key: tuple, manifest: object, cwd) -> None:
    """Keep ``manifest`` for this process and, written whole then renamed, for the next one."""
    _parsed.clear()
    _parsed[key] = manifest
    path = Path(cwd) / MANIFEST_CACHE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, delete=False)
    except OSError:  # a read-only project: each process parses, as dbt does
        return
    try:
        with file:
            pickle.dump((key, _manifest_state(manifest)), file, protocol=pickle.HIGHEST_PROTOCOL)
        os.chmod(file.name, 0o644)  # as dbt's own files there (a temporary file is the owner's alone)
        os.replace(file.name, path)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        with contextlib.suppress(OSError):
            os.unlink(file.name)


@contextlib.contextmanager
def _keeping_the_parse() -> Iterator[list]:
    """For the length of one invocation, the manifests dbt parses are also appended to the list yielded."""
    from dbt.cli import requires

    kept: list = []
    parse = requires.parse_manifest

    def parse_and_keep(*args, **kwargs):
        manifest = parse(*args, **kwargs)
        kept.append(manifest)
        return manifest

    requires.parse_manifest = parse_and_keep
    try:
        yield kept
    finally:
        requires.parse_manifest = parse


class InProcessDbt:
    """A dbt invocation run to completion in this process, shaped like the finished ``Popen`` that
    dagster-dbt reads: ``stdout`` holds one JSON event per line (what ``DBT_LOG_FORMAT=json``
    prints), ``wait()`` returns dbt's exit code (0 success, 1 a failed node, 2 an error).

    ``keep_duckdb``: after a successful build dbt-duckdb's database stays open, lake attached, for the
    run's next dbt step (dbt-duckdb reuses it for the same profile); otherwise it is closed."""

    def __init__(self, args: Sequence[str], env: dict[str, str], cwd, keep_duckdb: bool = False, **_):
        from dbt.cli.main import dbtRunner
        from dbt_common.events.functions import msg_to_dict

        _patch_behavior_flag_source()

        lines: list[bytes] = []

        def record(event) -> None:
            if event.info.level != "debug":
                lines.append(orjson.dumps(msg_to_dict(event)) + b"\n")

        key = _manifest_key(args, env, cwd)
        result = None
        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        # dbt reads its target and log paths, profiles dir and the warehouse from the environment
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        try:
            with _keeping_the_parse() as parsed:
                # `dbt parse` itself always parses (it is asked to write what it parsed)
                reuse = None if "parse" in args else _kept_manifest(key, cwd)
                runner = dbtRunner(manifest=reuse, callbacks=[record])
                result = runner.invoke([*IN_PROCESS_LOGGING, *_without_logging(args[1:])])
            if parsed and result.exception is None:
                _keep_manifest(key, parsed[-1], cwd)
        finally:
            if not (keep_duckdb and result is not None and result.success):
                _close_duckdb()
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
        self.args = list(args)
        self.returncode = 0 if result.success else (2 if result.exception is not None else 1)
        if result.exception is not None:
            error = {"info": {"name": "MainEncounteredError", "level": "error", "msg": str(result.exception)}}
            lines.append(orjson.dumps({**error, "data": {}}) + b"\n")
        self.stdout = io.BytesIO(b"".join(lines))

    def wait(self, timeout=None) -> int:  # noqa: ARG002 (Popen's signature)
        return self.returncode

    def poll(self) -> int:
        return self.returncode

    def send_signal(self, sig) -> None:  # the run has finished: nothing to interrupt
        pass


def _behavior_flag_source() -> str:
    """What ``BehaviorFlagRendered._default_source`` returns — the name of the first calling module outside
    dbt-common's behavior_flags — from the frames' globals. dbt-common finds it with ``inspect.stack()``,
    which reads the source file of every frame on the stack, Dagster's deep one included, each time a
    dbt invocation creates its adapter (seen in a py-spy profile of a refresh, docs/benchmarks.md)."""
    from dbt_common import behavior_flags

    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        # inspect.getmodule finds no module for code without a source file (``<string>``)
        if name and name != behavior_flags.__name__ and not frame.f_code.co_filename.startswith("<"):
            return name
        frame = frame.f_back
    return "Unknown"


def _patch_behavior_flag_source() -> None:
    from dbt_common.behavior_flags import BehaviorFlagRendered

    BehaviorFlagRendered._default_source = staticmethod(_behavior_flag_source)


def _without_logging(args: Sequence[str]) -> list[str]:
    """``args`` less the logging flags IN_PROCESS_LOGGING sets (dbt refuses a flag given twice)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in IN_PROCESS_LOGGING[::2]:
            skip = True  # and its value
        else:
            kept.append(arg)
    return kept


def _close_duckdb() -> None:
    """dbt-duckdb keeps its DuckDB connection open in the process after a run; the warehouse's own
    (read-only) connections could not open the file beside it. Close it."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    if DuckDBConnectionManager._ENV is not None:
        DuckDBConnectionManager._ENV.close()
    DuckDBConnectionManager.close_all_connections()


class PmxDbtCli(DbtCliResource):
    """``DbtCliResource`` that runs dbt in this process and skips the version probe and the adapter
    handle (see the module docstring).

    In a run, the DuckDB database dbt-duckdb opens (and the lake it attaches) is kept from one dbt step
    to the next and closed when the run ends: the next step's first query would otherwise read the
    lake's catalog again (0.3–0.5 s of a daily refresh's second dbt step, docs/benchmarks.md). A
    failed build closes it, and so does every invocation outside a run."""

    in_process: bool = True
    _in_run: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)
        self._in_run = context.run is not None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:  # noqa: ARG002
        if self._in_run and self.in_process:
            _close_duckdb()
        self._in_run = False

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):  # noqa: ARG002 (dagster-dbt's signature)
        return None

    def cli(self, args, **kwargs):
        if not self.in_process:
            return super().cli(args, **kwargs)
        popen = functools.partial(InProcessDbt, keep_duckdb=self._in_run)
        shim = SimpleNamespace(Popen=popen, PIPE=subprocess.PIPE, STDOUT=subprocess.STDOUT)
        saved = dbt_cli_invocation.subprocess
        dbt_cli_invocation.subprocess = shim
        try:
            return super().cli(args, **kwargs)
        finally:
            dbt_cli_invocation.subprocess = saved
