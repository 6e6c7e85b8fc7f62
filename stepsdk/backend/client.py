"""The one place that builds the official ``supabase`` client (recorder, CLI, viewer).

supabase-py 2.x deprecates the per-service ``timeout``/``verify``/``proxy`` options (PostgREST,
Storage): it wants one ``httpx.Client`` that carries them. ``ClientOptions`` still has timeout
fields with defaults, and a client built without ``httpx_client`` passes them on and warns on
first use of ``.table()``/``.storage``. So every client here is built with its own httpx client:
one timeout policy, no deprecated option, no warning.

No GET retry loop inside postgrest-py (1+2+4 s on an unreachable host): callers that retry (the
recorder) do it with their own policy; a CLI or a viewer should answer "unreachable" now.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from supabase import Client

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 60.0


def http_client(
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float | None = None,
    on_response: Callable[[httpx.Response], None] | None = None,
) -> httpx.Client:
    """The httpx client under PostgREST and Storage: the timeouts, redirects followed."""
    hooks = {"response": [on_response]} if on_response else {}
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, connect_timeout or DEFAULT_CONNECT_TIMEOUT)),
        follow_redirects=True,
        event_hooks=hooks,
    )


def make_client(
    url: str,
    key: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float | None = None,
    headers: Mapping[str, str] | None = None,
    retry: bool = False,
    http: httpx.Client | None = None,
    **options: Any,
) -> Client:
    """The official sync client for ``url`` with ``key``.

    ``headers`` (e.g. a user's ``Authorization``) go to every service; ``http`` replaces the
    httpx client built from the timeouts (its owner then configures it); other ``options`` are
    ``ClientOptions`` fields such as ``auto_refresh_token``. Raises ``supabase.SupabaseException``
    for an invalid URL or key.
    """
    from supabase import ClientOptions, create_client

    if headers:
        options["headers"] = {**ClientOptions().headers, **headers}
    client_options = ClientOptions(
        httpx_client=http or http_client(timeout, connect_timeout), postgrest_client_retry=retry, **options
    )
    return create_client(url, key, client_options)
