"""Builds the viewer: pages + JSON API over one :class:`~stepsdk.viewer.data.base.DataSource`."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from nicegui import ui

from . import DEFAULT_HOST
from .data.base import DataSource

log = logging.getLogger("stepsdk.viewer")
# A page view whose browser never opens its websocket (a script, a crawler, a load test) is
# kept by NiceGUI for 60 s; a browser connects within seconds, so the viewer lets such views go
# after this long (benchmarks/README.md, "Backup index": the load test's memory).
UNCONNECTED_PAGE_TTL_S = 10.0


def create_app(
    source: DataSource,
    *,
    listen_host: str = DEFAULT_HOST,
    allowed_hosts: Sequence[str] = (),
    stale_minutes: float | None = None,
) -> None:
    """Register every page and API route on NiceGUI's app for ``source``.

    ``listen_host`` and ``allowed_hosts``: the names a request's ``Host`` header may carry
    (loopback names always); others get 421. ``stale_minutes``: a running task with no new step
    for that long shows as stale (default $STEPSDK_STALE_MINUTES or 10).
    """
    if not isinstance(source, DataSource):
        raise TypeError(f"source must be a viewer DataSource, got {type(source).__name__}")
    from nicegui import app

    from . import api, api_ops, operations
    from ._hostcheck import HostCheck, allowed_names
    from .pages import _common, compare, ops, search, stats, task, tasks

    if stale_minutes is not None:
        _common.set_stale_minutes(stale_minutes)
    app.add_middleware(HostCheck, allowed=allowed_names(listen_host, allowed_hosts))
    # GET /api/storage; the clean-up endpoint when the key may delete (before api's /api catch-all)
    operations.register(source)
    prices = api_ops.load_prices()
    api_ops.register(source, prices)  # before api: its catch-all 404 route would shadow these
    ops.register(source, prices)
    api.register(source)
    tasks.register(source)
    task.register(source)
    stats.register(source)
    compare.register(source)
    search.register(source)


def source_from_args(
    backup_dir: str | None = None,
    supabase_url: str | None = None,
    supabase_key: str | None = None,
    access_token: str | None = None,
) -> DataSource:
    """The backup folder by default; Supabase when a URL is given (key from the environment).

    The key and the backup folder are resolved by :meth:`stepsdk.Config.resolve`, as for the tracker;
    the viewer alone also accepts SUPABASE_ANON_KEY (with a user's SUPABASE_ACCESS_TOKEN).
    """
    from stepsdk.config import Config
    from stepsdk.errors import ConfigurationError

    # "" for the URL: only an explicit --supabase-url selects Supabase, never SUPABASE_URL alone.
    # The level is fixed so that STEPSDK_LEVEL (a recording setting) plays no part here.
    config = Config.resolve(
        supabase_url=supabase_url or "",
        supabase_key=supabase_key,
        backup_dir=backup_dir or None,
        level="DETAILED",
    )
    if config.supabase_url:
        from .data.supabase_source import SupabaseSource

        key = config.supabase_key or os.environ.get("SUPABASE_ANON_KEY")
        if not key:
            raise ConfigurationError(
                "a Supabase key is needed: set SUPABASE_SECRET_KEY (or SUPABASE_SERVICE_ROLE_KEY)"
            )
        # a user's token (SUPABASE_ACCESS_TOKEN) with the anon key: row-level security shows their tasks only
        return SupabaseSource(
            config.supabase_url, key, access_token=access_token or os.environ.get("SUPABASE_ACCESS_TOKEN")
        )
    from .data.backup_source import BackupSource

    return BackupSource(config.backup_dir)


def backup_folder(backup_dir: str | None = None) -> str:
    """The backup folder :func:`source_from_args` reads when no Supabase URL is given."""
    from stepsdk.config import Config

    return str(Config.resolve(supabase_url="", backup_dir=backup_dir or None, level="DETAILED").backup_dir)


def run_options() -> dict[str, object]:
    """The ``ui.run`` options of the viewer (also used by the tests' simulated app)."""
    return {
        "title": "stepsdk viewer",
        "favicon": "🔎",
        "show_welcome_message": False,
        "fastapi_docs": {"title": "stepsdk viewer API", "version": "1"},
    }


def run(
    source: DataSource,
    *,
    host: str = DEFAULT_HOST,
    port: int = 8080,
    show: bool = False,
    allowed_hosts: Sequence[str] = (),
    stale_minutes: float | None = None,
) -> None:
    """Serve the viewer until interrupted."""
    create_app(source, listen_host=host, allowed_hosts=allowed_hosts, stale_minutes=stale_minutes)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("viewer: listening on %s: anyone who can reach it can read every task", host)
        if host in ("0.0.0.0", "::") and not allowed_hosts:
            log.warning(
                "viewer: only loopback names are accepted in the Host header; "
                "add --allowed-host NAME for the name or address others use"
            )

    from nicegui import app
    from nicegui.client import Client

    app.timer(5.0, lambda: Client.prune_instances(client_age_threshold=UNCONNECTED_PAGE_TTL_S))
    if source.worker_threads:
        threads = source.worker_threads

        async def limit_threads() -> None:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = threads

        app.on_startup(limit_threads)
    ui.run(host=host, port=port, reload=False, show=show, uvicorn_logging_level="warning", **run_options())  # type: ignore[arg-type]
