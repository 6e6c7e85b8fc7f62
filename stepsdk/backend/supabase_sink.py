"""Uploads rows and screenshot objects with the official `supabase` client.

One `httpx.Client` with explicit timeouts is shared by PostgREST and Storage; the client's own
GET retries are off (`postgrest_client_retry=False`): `stepsdk.backend.retry` does the retrying. A 429
answer is turned into `ThrottledError(retry_after)` by a response hook, because the client's
`APIError` carries neither the status nor the Retry-After header.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Iterable
from typing import Any

import httpx
from postgrest.types import ReturnMethod

from stepsdk.backend.client import make_client
from stepsdk.backend.retry import ServerError, ThrottledError
from stepsdk.config import Config
from supabase import Client

log = logging.getLogger("stepsdk.sink")

ON_CONFLICT = {"tasks": "task_id", "task_steps": "id", "step_screenshots": "id"}


def _retry_after(value: str | None) -> float:
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date; anything else (raises ValueError since Python 3.10): the default
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    return max(0.0, parsed.timestamp() - time.time())


def _on_response(response: httpx.Response) -> None:
    """Turn statuses the clients' exceptions cannot express into our own (classified exactly)."""
    status = response.status_code
    if status == 429:
        delay = _retry_after(response.headers.get("Retry-After"))
        response.close()
        raise ThrottledError(delay, f"throttled (429), retry after {delay:.1f} s")
    if status >= 500 or status == 408:
        # PostgREST's APIError and storage3's errors drop the HTTP status; a JSON body with an
        # unknown code would otherwise look like a rejected row. Any 5xx is worth a retry.
        text = response.read().decode("utf-8", "replace")[:300]
        response.close()
        raise ServerError(status, text)


class SupabaseSink:
    """Idempotent writes to the stepsdk tables and bucket. Every method may raise; callers retry."""

    def __init__(self, config: Config) -> None:
        if not config.remote:
            raise ValueError("SupabaseSink needs a Supabase URL and key")
        timeout = httpx.Timeout(config.request_timeout, connect=config.connect_timeout)
        self._http = httpx.Client(timeout=timeout, event_hooks={"response": [_on_response]})
        self._client: Client = make_client(
            config.supabase_url or "",
            config.supabase_key or "",
            http=self._http,
            auto_refresh_token=False,
            persist_session=False,
        )
        self.bucket = config.bucket

    def __repr__(self) -> str:  # never the key
        return f"SupabaseSink(bucket={self.bucket!r})"

    def upsert(self, table: str, rows: list[dict[str, Any]]) -> None:
        """One request per distinct column set (rows of one batch normally share one)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(sorted(row)), []).append(row)
        for group in groups.values():
            (
                self._client.table(table)
                .upsert(group, on_conflict=ON_CONFLICT[table], returning=ReturnMethod.minimal)
                .execute()
            )

    def existing(self, table: str, ids: Iterable[str]) -> set[str]:
        """Which of these ids are already stored (resync reports them as skipped)."""
        column = ON_CONFLICT[table]
        found: set[str] = set()
        id_list = list(ids)
        for i in range(0, len(id_list), 100):
            chunk = id_list[i : i + 100]
            res = self._client.table(table).select(column).in_(column, chunk).execute()
            found.update(str(r[column]) for r in res.data or ())
        return found

    def upload_object(self, screenshot_path: str, data: bytes) -> None:
        from stepsdk.recording.sensitive import content_type  # .enc objects are ciphertext, not images

        self._client.storage.from_(self.bucket).upload(
            screenshot_path, data, {"content-type": content_type(screenshot_path), "upsert": "true"}
        )

    def probe(self) -> None:
        """A cheap read that proves the backend, the key and the schema work (raises otherwise)."""
        self._client.table("tasks").select("task_id").limit(1).execute()

    def close(self) -> None:
        self._http.close()
