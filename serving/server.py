"""Run the prediction service as a process: the command line, its environment, start and readiness wait.

Used by ``mesops serve``, the demo, the end-to-end tests and the serving benchmark, so all of them start the
service the same way.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from mesops.settings import TELEMETRY_OFF, Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICE = "serving.service:MesopsService"


# Ports handed out for tests, the demo and benchmarks come from below Linux's ephemeral range (32768-60999):
# a port the OS picked for us there can be handed to another socket (BentoML's process manager binds several)
# between our check and the service's own bind, which made a replica fail with "address already in use".
PORT_RANGE = (20000, 32000)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests, the demo and benchmarks)."""
    return free_ports(1, host)


def free_ports(count: int, host: str = "127.0.0.1", avoid: tuple[int, ...] = ()) -> int:
    """The first of ``count`` consecutive free TCP ports (replicas listen on consecutive ports), none in ``avoid``."""
    low, high = PORT_RANGE
    for _ in range(200):
        first = random.randrange(low, high - count)
        wanted = range(first, first + count)
        if any(port in avoid for port in wanted):
            continue
        with contextlib.ExitStack() as held:
            try:
                for port in wanted:
                    sock = held.enter_context(socket.socket())
                    sock.bind((host, port))
            except OSError:
                continue
        return first
    raise OSError(f"no {count} consecutive free ports on {host} in {low}-{high}")


class ServerError(RuntimeError):
    """The service did not start or did not become ready: says how long it waited and where its log is."""


def server_command(settings: Settings, host: str, port: int) -> list[str]:
    """``bentoml serve`` of the mesops service on host:port, from this environment's bentoml."""
    bentoml = Path(sys.executable).with_name("bentoml")
    return [
        str(bentoml),
        "serve",
        SERVICE,
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        str(REPO_ROOT),
    ]


def server_environment(settings: Settings, workers: int | None = None) -> dict[str, str]:
    """The process environment: the settings' home, BentoML's own state under it, telemetry off."""
    env = dict(os.environ) | TELEMETRY_OFF
    env["MESOPS_HOME"] = str(settings.home)
    env["BENTOML_HOME"] = str(settings.home / "bentoml")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    options = [f"services.mesops.workers={workers or settings.serving_workers}"]
    if settings.serving_access_log:
        options.append("services.mesops.logging.access.enabled=true")
    env["BENTOML_CONFIG_OPTIONS"] = " ".join(options)
    return env


class ServerProcess:
    """The service in a child process; a context manager that waits for /readyz and stops it on exit."""

    def __init__(
        self,
        settings: Settings,
        host: str | None = None,
        port: int | None = None,
        workers: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.host = host or settings.serving_host
        self.port = port or settings.serving_port
        self.workers = workers
        self.log_path = log_path or settings.logs_dir / "serving.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, ready_timeout_s: float = 120.0) -> ServerProcess:
        """Start the process and wait until /readyz answers 200 (every champion loaded)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            server_command(self.settings, self.host, self.port),
            env=server_environment(self.settings, self.workers),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the workers too
        )
        self.wait_ready(ready_timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Poll /readyz until 200; ServerError when the process exits or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(
                    f"the service exited with code {self.process.returncode}; see {self.log_path}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise ServerError(f"the service was not ready after {timeout_s:.0f} s; see {self.log_path}")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM the process group (the service writes its pending log rows), SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the server and every worker: a crash, for tests of what a crash loses.

        BentoML's workers run in sessions of their own, so killing the server's process group alone would leave
        them orphaned and still writing the log: every descendant is found first and killed with it.
        """
        if self.process is not None and self.process.poll() is None:
            workers = descendants(self.process.pid)
            os.killpg(self.process.pid, signal.SIGKILL)
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            deadline = time.monotonic() + 10  # a SIGKILL lands when the process is next scheduled
            while any(running(pid) for pid in workers) and time.monotonic() < deadline:
                time.sleep(0.02)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), read from /proc (Linux)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name (in parentheses) may hold spaces
        parents.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        children = parents.get(queue.pop(), [])
        found += children
        queue += children
    return found


def running(pid: int) -> bool:
    """Is the process there and not a zombie (killed, waiting to be reaped)? Read from /proc (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
