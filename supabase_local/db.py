"""Per-request transactions on a pool of ``authenticator`` connections, as PostgREST does them.

Every request: BEGIN [READ ONLY]; set_config(role, claims, method, path, headers) local to the
transaction; the statement; COMMIT. Row-level security and grants are enforced by PostgreSQL
itself because the statement runs under the request's role.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

log = logging.getLogger(__name__)


class RoleRejected(Exception):
    """The JWT's role could not be assumed (no such role, or not granted to authenticator)."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


class DbUnavailable(Exception):
    """No database connection could be had (PostgREST answers 503 PGRST000/003)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RequestContext:
    role: str
    claims: dict[str, object]
    method: str
    path: str
    headers: dict[str, str]


class Database:
    def __init__(
        self,
        authenticator_dsn: str,
        max_size: int = 8,
        role_settings: Callable[[str], list[tuple[str, str]]] | None = None,
    ) -> None:
        self.role_settings = role_settings or (lambda role: [])
        self.pool = ConnectionPool(
            authenticator_dsn,
            min_size=1,
            max_size=max_size,
            timeout=10.0,
            open=True,
            kwargs={"autocommit": True, "row_factory": dict_row},
            check=ConnectionPool.check_connection,
            name="supabase-local",
        )

    def close(self) -> None:
        self.pool.close(timeout=5.0)

    @contextmanager
    def transaction(self, ctx: RequestContext, read_only: bool) -> Iterator[psycopg.Connection]:
        """Yield a connection inside BEGIN…; commit on normal exit, roll back on exceptions."""
        try:
            cm = self.pool.connection()
            conn = cm.__enter__()
        except PoolTimeout as e:
            raise DbUnavailable("PGRST003", "Timed out acquiring connection from connection pool.") from e
        except psycopg.OperationalError as e:
            raise DbUnavailable("PGRST000", str(e)) from e
        try:
            conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY" if read_only else "BEGIN")
            try:
                self._set_context(conn, ctx)
            except psycopg.OperationalError as e:
                if e.diag.sqlstate is None:  # the connection itself failed
                    raise
                raise RoleRejected(e) from e
            except psycopg.Error as e:
                raise RoleRejected(e) from e
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            try:
                if not conn.closed:
                    conn.execute("ROLLBACK")
            except psycopg.Error:
                pass
            raise
        finally:
            cm.__exit__(None, None, None)

    def _set_context(self, conn: psycopg.Connection, ctx: RequestContext) -> None:
        claims = {**ctx.claims, "role": ctx.role}
        params: dict[str, str] = {
            "role": ctx.role,
            "claims": json.dumps(claims),
            "sub": str(ctx.claims.get("sub") or ""),
            "method": ctx.method,
            "path": ctx.path,
            "headers": json.dumps(ctx.headers),
        }
        # the role's own settings last (e.g. Supabase's statement_timeout per role), same round trip
        role_settings = ""
        for i, (name, value) in enumerate(self.role_settings(ctx.role)):
            params[f"n{i}"], params[f"v{i}"] = name, value
            role_settings += f", set_config(%(n{i})s, %(v{i})s, true)"
        conn.execute(
            "select set_config('search_path', '\"public\", \"extensions\"', true),"
            " set_config('role', %(role)s, true),"
            " set_config('request.jwt.claims', %(claims)s, true),"
            " set_config('request.jwt.claim.sub', %(sub)s, true),"
            " set_config('request.jwt.claim.role', %(role)s, true),"
            " set_config('request.method', %(method)s, true),"
            " set_config('request.path', %(path)s, true),"
            " set_config('request.headers', %(headers)s, true),"
            " set_config('request.cookies', '{}', true)" + role_settings,
            params,
        )
