"""Builds the viewer: pages + JSON API over one :class:`~viewer.data.base.DataSource`."""

from __future__ import annotations

import logging
import os

from nicegui import ui

from . import DEFAULT_HOST
from .data.base import DataSource

log = logging.getLogger("viewer")


def create_app(source: DataSource) -> None:
    """Register every page and API route on NiceGUI's app for ``source``."""
    if not isinstance(source, DataSource):
        raise TypeError(f"source must be a viewer DataSource, got {type(source).__name__}")
    from . import api
    from .pages import compare, search, stats, task, tasks

    api.register(source)
    tasks.register(source)
    task.register(source)
    stats.register(source)
    compare.register(source)
    search.register(source)


def source_from_args(backup_dir: str | None = None, supabase_url: str | None = None,
                     supabase_key: str | None = None, access_token: str | None = None) -> DataSource:
    """The backup folder by default; Supabase when a URL is given (key from the environment).

    The key and the backup folder are resolved by :meth:`stepsdk.Config.resolve`, as for the tracker;
    the viewer alone also accepts SUPABASE_ANON_KEY (with a user's SUPABASE_ACCESS_TOKEN).
    """
    from stepsdk._config import Config

    # "" for the URL: only an explicit --supabase-url selects Supabase, never SUPABASE_URL alone.
    # The level is fixed so that STEPSDK_LEVEL (a recording setting) plays no part here.
    config = Config.resolve(supabase_url=supabase_url or "", supabase_key=supabase_key,
                            backup_dir=backup_dir or None, level="DETAILED")
    if config.supabase_url:
        from .data.supabase_source import SupabaseSource

        key = config.supabase_key or os.environ.get("SUPABASE_ANON_KEY")
        if not key:
            raise ValueError("a Supabase key is needed: set SUPABASE_SECRET_KEY (or SUPABASE_SERVICE_ROLE_KEY)")
        # a user's token (SUPABASE_ACCESS_TOKEN) with the anon key: row-level security shows their tasks only
        return SupabaseSource(config.supabase_url, key,
                              access_token=access_token or os.environ.get("SUPABASE_ACCESS_TOKEN"))
    from .data.backup_source import BackupSource

    return BackupSource(config.backup_dir)


def run_options() -> dict[str, object]:
    """The ``ui.run`` options of the viewer (also used by the tests' simulated app)."""
    return {"title": "stepsdk viewer", "favicon": "🔎", "show_welcome_message": False,
            "fastapi_docs": {"title": "stepsdk viewer API", "version": "1"}}


def run(source: DataSource, *, host: str = DEFAULT_HOST, port: int = 8080, show: bool = False) -> None:
    """Serve the viewer until interrupted."""
    create_app(source)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("viewer: listening on %s: anyone who can reach it can read every task", host)
    ui.run(host=host, port=port, reload=False, show=show, uvicorn_logging_level="warning",
           **run_options())  # type: ignore[arg-type]
