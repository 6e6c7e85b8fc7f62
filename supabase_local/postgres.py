"""A throw-away PostgreSQL 15 cluster for tests (or an existing server given by DSN).

initdb refuses to run as root, so when we are root the cluster is created and started as the
``postgres`` OS user in a temp dir chowned to it. fsync is off: test data never has to
survive a crash of the machine, and it makes the suite several times faster.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

log = logging.getLogger(__name__)

PG_BIN = Path(os.environ.get("STEPSDK_PG_BIN", "/usr/lib/postgresql/15/bin"))
# As on hosted Supabase: the cluster's superuser is `supabase_admin`; `postgres`, the role
# migrations run as, is an ordinary role created by platform.sql (NOSUPERUSER).
SUPERUSER = "supabase_admin"
CRON_DATABASE = "stepsdk"  # the database LocalStack creates; pg_cron schedules jobs in it


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Runs in its own session: when the process that started the cluster dies without cleaning up
# (SIGKILL, a crash), stop the cluster and remove its files so no postmaster is left behind.
_WATCHDOG = """
import os, shutil, subprocess, sys, time
parent, pg_ctl, datadir, root, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
while True:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    if not os.path.exists(datadir):
        sys.exit(0)
    time.sleep(0.5)
subprocess.run([*prefix, pg_ctl, "-D", datadir, "-m", "immediate", "-w", "-t", "30", "stop"], capture_output=True)
shutil.rmtree(root, ignore_errors=True)
"""


def _os_user_prefix() -> list[str]:
    """Run cluster commands as the postgres OS user when we are root."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def _template() -> Path:
    """An initdb'ed data dir shared by every cluster of this machine, built once (atomically)."""
    tpl = Path(tempfile.gettempdir()) / f"stepsdk-pg-template-{PG_BIN.parent.name}-{SUPERUSER}"
    if (tpl / "PG_VERSION").exists():
        return tpl
    tmp = Path(tempfile.mkdtemp(prefix="stepsdk-pg-template-build-"))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
    try:
        subprocess.run(
            [
                *_os_user_prefix(),
                str(PG_BIN / "initdb"),
                "-D",
                str(tmp / "data"),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        with contextlib.suppress(OSError):  # atomic: a concurrent builder's copy wins or ours does
            os.rename(tmp / "data", tpl)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tpl


@dataclass
class PgCluster:
    """A private cluster: ``start()`` → ``dsn(dbname)``; ``stop()`` is idempotent."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stepsdk-pg-")))
    port: int = field(default_factory=free_port)
    _started: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _watchdog: subprocess.Popen | None = None

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        return self.root / "sock"

    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return make_conninfo(host="127.0.0.1", port=self.port, dbname=dbname, user=user)

    def start(self) -> PgCluster:
        self.sockdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (self.root, self.sockdir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        run = _os_user_prefix()
        # Copying an initdb'ed template takes a quarter of initdb's time; every test session starts one.
        subprocess.run(
            [*run, "cp", "-a", str(_template()), str(self.datadir)], check=True, capture_output=True
        )
        opts = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.sockdir} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c shared_buffers=32MB -c max_connections=100 "
            "-c log_min_messages=warning -c logging_collector=off -c timezone=UTC "
            # pg_cron (Debian's postgresql-15-cron, installed by dev.sh): scheduled retention.
            # Its scheduler serves the stack's database; jobs connect back over TCP.
            f"-c shared_preload_libraries=pg_cron -c cron.database_name={CRON_DATABASE} "
            "-c cron.host=127.0.0.1"
        )
        subprocess.run(
            [
                *run,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-o",
                opts,
                "-l",
                str(self.root / "postgres.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        self._started = True
        atexit.register(self.stop)
        self._watchdog = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WATCHDOG,
                str(os.getpid()),
                str(PG_BIN / "pg_ctl"),
                str(self.datadir),
                str(self.root),
                *_os_user_prefix(),
            ],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        log.info("postgres cluster started on port %s in %s", self.port, self.root)
        return self

    def stop(self) -> None:
        with self._lock:
            if self._started:
                self._started = False
                subprocess.run(
                    [
                        *_os_user_prefix(),
                        str(PG_BIN / "pg_ctl"),
                        "-D",
                        str(self.datadir),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "30",
                        "stop",
                    ],
                    check=False,
                    capture_output=True,
                )
            shutil.rmtree(self.root, ignore_errors=True)
            if self._watchdog is not None:
                self._watchdog.terminate()
                self._watchdog.wait(5)
                self._watchdog = None


def create_database(admin_dsn: str, name: str) -> str:
    """Create a fresh database next to ``admin_dsn``'s and return its DSN."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return make_conninfo(admin_dsn, dbname=name)


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def with_user(dsn: str, user: str, password: str | None) -> str:
    params = conninfo_to_dict(dsn)
    params["user"] = user
    if password is None:
        params.pop("password", None)
    else:
        params["password"] = password
    return make_conninfo(**params)


def wait_ready(dsn: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
