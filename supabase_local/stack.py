"""The whole local stack: PostgreSQL + platform bootstrap + migrations + gateway."""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from . import postgres
from .db import Database
from .faults import FaultInjector
from .gateway import Gateway
from .jwt import DEV_JWT_SECRET, make_token
from .postgrest import PostgrestApi
from .schema import SchemaCache
from .storage import StorageApi

if TYPE_CHECKING:
    from supabase import Client

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS_DIR = REPO / "supabase" / "migrations"
SEED_SQL = REPO / "supabase" / "seed.sql"
PLATFORM_SQL = Path(__file__).with_name("platform.sql")
EXPOSED_SCHEMAS = ["public"]
# What the `stack` fixture empties between tests.
DATA_TABLES = ("public.step_screenshots", "public.task_steps", "public.tasks")
SCREENSHOT_BUCKET = "step-screenshots"
MIGRATION_ROLE = "postgres"


def migration_dsn(dsn: str) -> str:
    """``dsn``'s database as ``postgres``, the role migrations run as (NOSUPERUSER, as on hosted)."""
    password = conninfo_to_dict(dsn).get("password")
    return postgres.with_user(dsn, MIGRATION_ROLE, _migration_password(str(password)) if password else None)


def _migration_password(superuser_password: str) -> str:
    # deterministic: every process bootstrapping the same server agrees on it
    return hashlib.sha256(b"stepsdk-local-postgres:" + superuser_password.encode()).hexdigest()[:32]


def apply_platform(dsn: str) -> None:
    """What Supabase provides before user migrations (platform.sql), run as the superuser ``dsn``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.info.user == MIGRATION_ROLE:
            raise RuntimeError(
                f"the stack needs a superuser other than {MIGRATION_ROLE!r} (as on hosted Supabase, where "
                f"{MIGRATION_ROLE!r} is not a superuser); connect as e.g. supabase_admin"
            )
        conn.execute(PLATFORM_SQL.read_text())
        password = conninfo_to_dict(dsn).get("password")
        if password:  # a server that checks passwords: give the migration role one
            conn.execute(
                sql.SQL("alter role {} password {}").format(
                    sql.Identifier(MIGRATION_ROLE), sql.Literal(_migration_password(str(password)))
                )
            )


def apply_migrations(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply ``*.sql`` in filename order, unmodified, each in one transaction; skip applied ones.

    They run as ``postgres`` (not a superuser, as on hosted): a migration that needs superuser
    rights, owns no grants or alters storage tables fails here as it would on hosted Supabase.
    """
    applied: list[str] = []
    with psycopg.connect(migration_dsn(dsn), autocommit=True) as conn:
        done = {r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")}
        for path in sorted(directory.glob("*.sql")):
            version, _, name = path.stem.partition("_")
            if version in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name) values (%s, %s)",
                    (version, name),
                )
            applied.append(path.name)
    return applied


def run_sql(dsn: str, query: str, params: object = None) -> list[dict]:
    """Run SQL on ``dsn`` in a new autocommit connection; rows as dicts ([] for statements without rows)."""
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def bootstrap(dsn: str) -> list[str]:
    apply_platform(dsn)
    return apply_migrations(dsn)


@dataclass
class LocalStack:
    """Start with ``LocalStack.start()``; ``close()`` (also at exit) stops everything it started."""

    url: str
    anon_key: str
    service_role_key: str
    jwt_secret: str
    db_url: str
    faults: FaultInjector
    root: Path
    _closers: list = field(default_factory=list, repr=False)
    _closed: bool = False
    _bucket_row: dict | None = None
    # Supabase's newer opaque API keys; the gateway maps them to the service_role / anon JWTs.
    secret_key: str = ""
    publishable_key: str = ""
    schema_cache: SchemaCache | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def start(cls, port: int = 0, db_url: str | None = None, jwt_secret: str = DEV_JWT_SECRET) -> LocalStack:
        db_url = db_url or os.environ.get("STEPSDK_TEST_DB_URL") or None
        closers: list = []
        try:
            if db_url is None:
                cluster = postgres.PgCluster().start()
                closers.append(cluster.stop)
                # inside the cluster's dir: its watchdog removes both if this process is killed
                root = cluster.root / "stack"
                root.mkdir()
                admin = cluster.dsn("postgres")
                db_url = postgres.create_database(admin, "stepsdk")
            else:
                root = Path(tempfile.mkdtemp(prefix="stepsdk-stack-"))
                closers.append(lambda: shutil.rmtree(root, ignore_errors=True))
            postgres.wait_ready(db_url)
            bootstrap(db_url)
            password = secrets.token_urlsafe(24)
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute(sql.SQL("alter role authenticator password {}").format(sql.Literal(password)))
            cache = SchemaCache(db_url, EXPOSED_SCHEMAS)
            cache.start_listener()
            closers.append(cache.stop)
            db = Database(
                postgres.with_user(db_url, "authenticator", password),
                role_settings=lambda role: cache.snapshot.role_settings.get(role, []),
            )
            closers.append(db.close)
            anon = make_token(jwt_secret, "anon")
            service = make_token(jwt_secret, "service_role")
            faults = FaultInjector()
            rest = PostgrestApi(db, cache, jwt_secret, EXPOSED_SCHEMAS)
            storage = StorageApi(db, jwt_secret, root / "objects")
            secret_key = "sb_secret_" + secrets.token_urlsafe(24)
            publishable_key = "sb_publishable_" + secrets.token_urlsafe(24)
            gateway = Gateway(
                port,
                rest.handle,
                storage.handle,
                faults,
                {anon, service},
                service,
                {secret_key: service, publishable_key: anon},
            )
            gateway.start()
            closers.append(gateway.stop)
        except BaseException:
            for close in reversed(closers):
                close()
            raise
        stack = cls(
            url=f"http://127.0.0.1:{gateway.port}",
            anon_key=anon,
            service_role_key=service,
            jwt_secret=jwt_secret,
            db_url=db_url,
            faults=faults,
            root=root,
            _closers=closers,
            schema_cache=cache,
            secret_key=secret_key,
            publishable_key=publishable_key,
        )
        rows = stack.sql("select * from storage.buckets where id = %s", (SCREENSHOT_BUCKET,))
        stack._bucket_row = rows[0] if rows else None
        atexit.register(stack.close)
        log.info("local supabase stack at %s", stack.url)
        return stack

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.faults.clear()  # wakes hung requests, ends an outage
        except Exception:  # never let it keep the rest running
            log.exception("error while clearing faults of the local stack")
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # keep closing the rest; nothing may be left running
                log.exception("error while stopping the local stack")

    def _restore_screenshot_bucket(self, conn: psycopg.Connection) -> None:
        """Put the migration's bucket back exactly as it was created (tests may change or delete it)."""
        if self._bucket_row is None:
            return
        cols = [c for c in self._bucket_row if c not in ("created_at", "updated_at")]
        conn.execute(
            sql.SQL(
                "insert into storage.buckets ({cols}) values ({vals}) on conflict (id) do update set {sets}"
            ).format(
                cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
                vals=sql.SQL(", ").join(sql.Placeholder(c) for c in cols),
                sets=sql.SQL(", ").join(
                    sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in cols
                ),
            ),
            self._bucket_row,
        )

    # ----- helpers for tests -------------------------------------------------------------
    def client(self, key: str | None = None, retry: bool = False, **options: object) -> Client:
        """The official supabase client (service role by default), GET retries off unless asked.

        Built as stepsdk builds it (stepsdk/backend/client.py): its own httpx client carries the
        timeouts, so none of the per-service options supabase-py 2.x deprecates is used.
        """
        import httpx

        from supabase import ClientOptions, create_client

        if "headers" in options:
            options["headers"] = {**ClientOptions().headers, **options["headers"]}  # type: ignore[dict-item]
        options.setdefault(
            "httpx_client", httpx.Client(timeout=httpx.Timeout(120.0, connect=10.0), follow_redirects=True)
        )
        opts = ClientOptions(postgrest_client_retry=retry, **options)  # type: ignore[arg-type]
        return create_client(self.url, key or self.service_role_key, opts)

    @property
    def migration_db_url(self) -> str:
        """The database as ``postgres``, the role migrations run as (not a superuser, as on hosted)."""
        return migration_dsn(self.db_url)

    def sql(self, query: str, params: object = None) -> list[dict]:
        """Run SQL as the superuser (autocommit); rows as dicts ([] for statements without rows)."""
        return run_sql(self.db_url, query, params)

    def user_token(self, user_id: str, expires_in: int = 3600, **claims: object) -> str:
        """An ``authenticated`` JWT whose ``sub`` is ``user_id`` (a uuid, as auth.uid() casts it)."""
        if not isinstance(user_id, str):
            raise TypeError(f"user_id must be a str (a uuid), got {type(user_id).__name__}")
        try:
            uuid.UUID(user_id)
        except ValueError:
            raise ValueError(f"user_id must be a uuid like Supabase auth ids, got {user_id!r}") from None
        return make_token(self.jwt_secret, "authenticated", sub=user_id, expires_in=expires_in, **claims)

    def reset(self) -> None:
        """Empty stepsdk's tables and the screenshot bucket, drop other buckets, clear faults."""
        self.faults.clear()
        with psycopg.connect(self.db_url, autocommit=True) as conn, conn.transaction():
            try:
                # DELETE, not TRUNCATE: far cheaper on tiny tables and needs no exclusive lock.
                with conn.transaction():
                    for table in DATA_TABLES:
                        conn.execute(f"delete from {table}")
            except psycopg.errors.ForeignKeyViolation:  # a table outside ours references them
                conn.execute("truncate " + ", ".join(DATA_TABLES) + " cascade")
            # as the Storage API does it (direct SQL deletes on storage tables are refused otherwise)
            conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
            conn.execute("delete from storage.objects")
            conn.execute("delete from storage.buckets where id <> %s", (SCREENSHOT_BUCKET,))
            self._restore_screenshot_bucket(conn)
        objects = self.root / "objects"
        if objects.exists():
            for f in objects.iterdir():
                f.unlink(missing_ok=True)
