"""The production stack `mesops up` runs on one machine: everything on PostgreSQL, N service replicas, Dagster.

What it starts, in order: the PostgreSQL databases it needs (created when absent, schemas upgraded in place),
N prediction service replicas on consecutive ports sharing the platform database (prediction log, keys, rollout)
and the MLflow registry, the Dagster daemon (schedules and sensors) and webserver on the PostgreSQL instance
storage, and optionally event bridge workers. Each child runs in a session of its own, so a Ctrl-C in the
terminal reaches only the supervisor, which then stops every child (and every child's descendants) itself.

On many machines the same processes run with the same environment (:meth:`ProductionProfile.environment`):
only settings differ, no code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from mesops.settings import TELEMETRY_OFF, Settings
from serving.server import (
    REPO_ROOT,
    ServerError,
    ServerProcess,
    descendants,
    server_command,
    server_environment,
)

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
STATE_FILE = "stack.json"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class StackError(RuntimeError):
    """The stack cannot be configured or started; the message names the setting or component and why."""


# --- the production profile ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProductionProfile:
    """Where each kind of state lives in production: three PostgreSQL databases and a shared artifact folder.

    MLflow and Dagster each keep their own ``alembic_version`` table, so each gets its own database; the platform
    schema could share one (it versions itself in ``mesops_alembic_version``) but is kept apart for clarity.
    """

    home: Path
    platform_url: str
    mlflow_url: str
    dagster_url: str
    artifact_location: str

    def environment(self) -> dict[str, str]:
        """The MESOPS_* variables every process of the stack (on any machine) runs with."""
        return {
            "MESOPS_HOME": str(self.home),
            "MESOPS_DATABASE_URL": self.platform_url,
            "MESOPS_MLFLOW_TRACKING_URI": self.mlflow_url,
            "MESOPS_MLFLOW_ARTIFACT_LOCATION": self.artifact_location,
            "MESOPS_DAGSTER_POSTGRES_URL": self.dagster_url,
        }

    def settings(self, base: Settings) -> Settings:
        """``base`` with the profile's stores in place of the embedded defaults."""
        return base.model_copy(
            update={
                "database_url": self.platform_url,
                "mlflow_tracking_uri": self.mlflow_url,
                "mlflow_artifact_location": self.artifact_location,
                "dagster_postgres_url": self.dagster_url,
            }
        )


def production_profile(
    settings: Settings,
    postgres_url: str = DEFAULT_POSTGRES_URL,
    database_prefix: str = "mesops",
    artifact_location: str | None = None,
) -> ProductionProfile:
    """The profile: URLs set in the settings are kept; the others become databases on ``postgres_url``'s server.

    Args:
        settings: the installation's settings (MESOPS_*); an explicit URL there wins and must be PostgreSQL.
        postgres_url: any database URL of the PostgreSQL server (the database part is replaced).
        database_prefix: names of the created databases: <prefix>, <prefix>_mlflow, <prefix>_dagster.
        artifact_location: the shared folder of MLflow artifacts; default MESOPS_HOME/artifacts.
    """
    _require_postgres("--postgres-url", postgres_url)
    if not _DATABASE_NAME.match(database_prefix) or len(database_prefix) > 50:
        raise StackError(
            f"--database-prefix: must be lower-case letters, digits and _ (at most 50), not {database_prefix!r}"
        )
    server = make_url(postgres_url)

    def on_server(suffix: str) -> str:
        return server.set(database=database_prefix + suffix).render_as_string(hide_password=False)

    chosen = {
        "MESOPS_DATABASE_URL": settings.database_url or on_server(""),
        "MESOPS_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri or on_server("_mlflow"),
        "MESOPS_DAGSTER_POSTGRES_URL": settings.dagster_postgres_url or on_server("_dagster"),
    }
    for name, url in chosen.items():
        _require_postgres(name, url)
    artifacts = artifact_location or settings.mlflow_artifact_location or str(settings.home / "artifacts")
    return ProductionProfile(
        home=settings.home,
        platform_url=chosen["MESOPS_DATABASE_URL"],
        mlflow_url=chosen["MESOPS_MLFLOW_TRACKING_URI"],
        dagster_url=chosen["MESOPS_DAGSTER_POSTGRES_URL"],
        artifact_location=artifacts,
    )


def _require_postgres(name: str, url: str) -> None:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:  # re-raised naming the setting
        raise StackError(f"{name}: not a database URL ({err})") from None
    if parsed.drivername != "postgresql+psycopg2":
        raise StackError(
            f"{name}: the production stack runs on PostgreSQL; give a postgresql+psycopg2://… URL, "
            f"not {parsed.drivername}://…"
        )


def ensure_databases(profile: ProductionProfile) -> list[str]:
    """Create the profile's PostgreSQL databases that do not exist yet; returns the names created."""
    created = []
    for url in (profile.platform_url, profile.mlflow_url, profile.dagster_url):
        with _admin_connection(url) as (connection, name):
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))  # name checked by _admin_connection
                created.append(name)
    return created


def drop_databases(profile: ProductionProfile) -> None:
    """Drop the profile's databases, closing their sessions first (for throw-away stacks: tests, benchmarks)."""
    for url in (profile.platform_url, profile.mlflow_url, profile.dagster_url):
        with _admin_connection(url) as (connection, name):
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))  # name checked by _admin_connection


@contextlib.contextmanager
def _admin_connection(url: str) -> Iterator[tuple[Connection, str]]:
    """An autocommit connection to the server of ``url`` (its ``postgres`` database) and the checked name of the
    database ``url`` names; an unreachable server is a StackError of one line naming it."""
    target = make_url(url)
    name = target.database or ""
    if not _DATABASE_NAME.match(name):
        raise StackError(f"database {name!r} of {target.render_as_string()}: not a plain lower-case name")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            yield connection, name
    except SQLAlchemyError as err:  # connection refused, auth, no right to create: one line naming the server
        first_line = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise StackError(f"cannot reach PostgreSQL at {target.render_as_string()}: {first_line}") from err
    finally:
        admin.dispose()


def prepare_stores(profile: ProductionProfile, settings: Settings) -> None:
    """Upgrade every schema in place once, before the replicas start (so they do not race to create them)."""
    import dagster as dg

    from governance.registry import Registry
    from mesops import database
    from pipelines.instance import prepare_dagster_home

    database.upgrade(profile.platform_url)
    Registry(profile.mlflow_url, profile.artifact_location).client.search_registered_models(max_results=1)
    prepare_dagster_home(settings)
    dg.DagsterInstance.get().dispose()  # dagster-postgres creates or upgrades its tables when it connects


# --- the components ---------------------------------------------------------------------------------------
class Component(Protocol):
    """One supervised process of the stack."""

    name: str

    def start(self) -> None: ...
    def wait_ready(self, timeout_s: float) -> None: ...
    def status(self) -> str: ...
    def pid(self) -> int | None: ...
    def url(self) -> str | None: ...
    def stop(self) -> None: ...


def _stop_tree(pid: int, stop: Callable[[], object], grace_s: float = 2.0, timeout_s: float = 10.0) -> None:
    """Stop a child the way it stops itself, then end whatever of its descendants is still running.

    BentoML and Dagster start children in sessions of their own: a signal to the child's group does not
    reach them, so they are listed before the stop; survivors get SIGTERM, then SIGKILL.
    """
    below = descendants(pid)
    stop()
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, timeout_s)):
        if not _wait_gone(below, wait_s):
            for child in below:
                if _alive(child):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, sig)
    if not _wait_gone(below, 5.0):
        raise StackError(f"processes {[p for p in below if _alive(p)]} survived SIGKILL")


def _wait_gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended; only its parent has not reaped it


@dataclass
class Replica:
    """One prediction service replica (a ServerProcess) on its own port, with the profile's environment."""

    settings: Settings
    env: dict[str, str]
    host: str
    port: int
    workers: int | None = None
    process: ServerProcess = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"service:{self.port}"
        self.process = ServerProcess(
            self.settings,
            host=self.host,
            port=self.port,
            workers=self.workers,
            log_path=self.settings.logs_dir / f"serving-{self.port}.log",
        )

    def start(self) -> None:
        # As ServerProcess.start, without its wait: the stack starts every replica, then waits for all at once.
        self.process.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.process.log_path.open("ab") as log:
            self.process.process = subprocess.Popen(
                server_command(self.settings, self.host, self.port),
                env=server_environment(self.settings, self.workers) | self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float) -> None:
        try:
            self.process.wait_ready(timeout_s)
        except ServerError as err:
            raise StackError(f"{self.name}: {err}") from err

    def status(self) -> str:
        return _http_status(self.process.process, f"{self.process.url}/readyz")

    def pid(self) -> int | None:
        return None if self.process.process is None else self.process.process.pid

    def url(self) -> str | None:
        return self.process.url

    def stop(self) -> None:
        if self.process.process is not None:
            _stop_tree(self.process.process.pid, self.process.stop)


@dataclass
class Child:
    """A command run as a supervised child in a session of its own (Dagster daemon, webserver, bridge)."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str | None = None
    kill_after_s: float = 10.0  # how long its leftover descendants get after SIGTERM before SIGKILL
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.status()
            if state == "ready":
                return
            if state.startswith("exited") or time.monotonic() > deadline:
                raise StackError(f"{self.name}: {state} after {timeout_s:.0f} s; see {self.log_path}")
            time.sleep(0.5)

    def status(self) -> str:
        if self.ready_url is None:
            if self.process is None:
                return "not started"
            code = self.process.poll()
            return "ready" if code is None else f"exited with code {code}"
        return _http_status(self.process, self.ready_url)

    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def url(self) -> str | None:
        return self.ready_url

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return

        def terminate() -> None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

        _stop_tree(process.pid, terminate, timeout_s=self.kill_after_s)


def _http_status(process: subprocess.Popen[bytes] | None, url: str) -> str:
    if process is None:
        return "not started"
    if process.poll() is not None:
        return f"exited with code {process.returncode}"
    try:
        answer = httpx.get(url, timeout=2)
    except httpx.TransportError:
        return "starting"
    return "ready" if answer.status_code == 200 else f"not ready (HTTP {answer.status_code})"


# --- the stack --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StackConfig:
    """What to run: replicas and their ports, Dagster and its UI port, bridge workers."""

    replicas: int = 2
    host: str = "127.0.0.1"
    first_port: int = 3000
    workers_per_replica: int | None = None
    dagster: bool = True
    dagster_port: int = 3070
    bridge_workers: int = 0
    ready_timeout_s: float = 300.0


def bridge_available() -> bool:
    """True when this installation has the event bridge and its `mesops bridge` command."""
    if importlib.util.find_spec("mesops.bridge_cli") is None:
        return False
    from mesops.cli import app

    return any((c.name or getattr(c.callback, "__name__", "")) == "bridge" for c in app.registered_commands)


def child_environment(profile: ProductionProfile, settings: Settings) -> dict[str, str]:
    """The environment of every child: this one, the profile's stores, DAGSTER_HOME, telemetry off."""
    env = dict(os.environ) | TELEMETRY_OFF | profile.environment()
    env["DAGSTER_HOME"] = str(settings.dagster_home)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def build_components(profile: ProductionProfile, settings: Settings, config: StackConfig) -> list[Component]:
    """The stack's processes, in start order."""
    if config.replicas < 1:
        raise StackError(f"--replicas: at least 1, not {config.replicas}")
    if config.bridge_workers and not bridge_available():
        raise StackError("--bridge-workers: this installation has no `mesops bridge` command")
    env = child_environment(profile, settings)
    bin_dir = Path(sys.executable).parent
    logs = settings.logs_dir
    components: list[Component] = [
        Replica(
            settings, profile.environment(), config.host, config.first_port + i, config.workers_per_replica
        )
        for i in range(config.replicas)
    ]
    if config.dagster:
        module = ["-m", "pipelines.definitions"]
        components.append(
            Child(
                "dagster-daemon",
                [str(bin_dir / "dagster-daemon"), "run", *module],
                env,
                logs / "dagster-daemon.log",
            )
        )
        components.append(
            Child(
                "dagster-webserver",
                [
                    str(bin_dir / "dagster-webserver"),
                    *module,
                    "-h",
                    config.host,
                    "-p",
                    str(config.dagster_port),
                ],
                env,
                logs / "dagster-webserver.log",
                ready_url=f"http://{config.host}:{config.dagster_port}/server_info",
            )
        )
    for n in range(config.bridge_workers):
        components.append(
            Child(
                f"bridge:{n + 1}",
                [sys.executable, "-m", "mesops", "bridge"],
                env,
                logs / f"bridge-{n + 1}.log",
            )
        )
    return components


class Stack:
    """Starts the components, reports their status, stops them all (also when starting fails half way)."""

    def __init__(self, profile: ProductionProfile, settings: Settings, config: StackConfig) -> None:
        self.profile = profile
        self.settings = profile.settings(settings)
        self.config = config
        self.components = build_components(profile, self.settings, config)

    @property
    def state_file(self) -> Path:
        return self.settings.home / STATE_FILE

    def start(self, on_step: Callable[[str], None] = lambda _: None) -> None:
        """Create and upgrade the stores, start every component and wait until each is ready."""
        self.settings.ensure_dirs()
        on_step("databases")
        ensure_databases(self.profile)
        on_step("schemas")
        prepare_stores(self.profile, self.settings)
        try:
            for component in self.components:
                on_step(f"start {component.name}")
                component.start()
            self._write_state()
            on_step("wait until ready")
            pool = ThreadPoolExecutor(max_workers=len(self.components))
            try:
                waits = [pool.submit(c.wait_ready, self.config.ready_timeout_s) for c in self.components]
                for wait in waits:
                    wait.result()
            finally:
                # not waiting for the other waits: on an error or a signal, stop() ends what they poll
                pool.shutdown(wait=False, cancel_futures=True)
        except BaseException:
            self.stop()
            raise

    def status(self) -> dict[str, str]:
        """Each component's state: ready, starting, not ready (HTTP n) or exited with code n."""
        return {c.name: c.status() for c in self.components}

    def failed(self) -> dict[str, str]:
        """The components that have exited."""
        return {name: state for name, state in self.status().items() if state.startswith("exited")}

    def stop(self, on_step: Callable[[str], None] = lambda _: None) -> None:
        """Stop every component, last started first, and every process below it."""
        for component in reversed(self.components):
            if component.pid() is None:
                continue
            started = time.monotonic()
            component.stop()
            on_step(f"stopped {component.name} ({time.monotonic() - started:.1f} s)")
        self.state_file.unlink(missing_ok=True)

    def _write_state(self) -> None:
        state = {
            "supervisor_pid": os.getpid(),
            "components": [{"name": c.name, "pid": c.pid(), "url": c.url()} for c in self.components],
        }
        self.state_file.write_text(json.dumps(state, indent=2))


def read_state(home: Path) -> dict[str, object] | None:
    """The state file of a running `mesops up` under ``home``, or None when none is running."""
    path = home / STATE_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return state if _alive(int(state["supervisor_pid"])) else None


def signal_stop(home: Path, timeout_s: float = 90.0) -> bool:
    """SIGTERM the `mesops up` supervisor of ``home`` and wait until it has stopped everything."""
    state = read_state(home)
    if state is None:
        return False
    pid = int(state["supervisor_pid"])  # type: ignore[call-overload]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            raise StackError(f"mesops up (pid {pid}) did not stop within {timeout_s:.0f} s")
        time.sleep(0.2)
    return True
