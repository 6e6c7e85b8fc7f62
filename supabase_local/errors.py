"""PostgREST's error envelope and its SQLSTATE → HTTP status mapping."""

from __future__ import annotations

import psycopg

from .http_types import Response


class ApiError(Exception):
    """An error answered as ``{"code","details","hint","message"}`` with ``Proxy-Status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = headers or []

    def response(self) -> Response:
        body = {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}
        return Response.json(
            self.status, body, [*self.headers, ("Proxy-Status", f"PostgREST; error={self.code}")]
        )


def pg_status(sqlstate: str, authed: bool) -> int:
    """PostgREST's table (Error.hs), including its 42501 rule: 403 for a JWT role, 401 for anon."""
    exact = {"23503": 409, "23505": 409, "25006": 405, "P0001": 400, "42883": 404, "42P01": 404, "42P17": 500}
    if sqlstate in exact:
        return exact[sqlstate]
    if sqlstate == "42501":
        return 403 if authed else 401
    prefix = {
        "08": 503,
        "09": 500,
        "0L": 403,
        "0P": 403,
        "25": 500,
        "28": 403,
        "2D": 500,
        "38": 500,
        "39": 500,
        "3B": 500,
        "40": 500,
        "53": 503,
        "54": 413,
        "55": 500,
        "57": 500,
        "58": 500,
        "F0": 500,
        "HV": 500,
        "P0": 500,
        "XX": 500,
    }
    if sqlstate[:2] in prefix:
        return prefix[sqlstate[:2]]
    if sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    return 400


def from_pg(exc: psycopg.Error, authed: bool) -> ApiError:
    diag = exc.diag
    code = diag.sqlstate or "XX000"
    status = pg_status(code, authed)
    headers = [("WWW-Authenticate", "Bearer")] if status == 401 else []
    return ApiError(
        status, code, diag.message_primary or str(exc), diag.message_detail, diag.message_hint, headers
    )
