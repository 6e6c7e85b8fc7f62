"""Operations the viewer offers beside reading: storage figures (``GET /api/storage``), deleting
a task (the task page's delete button) and a clean-up (``POST /api/storage/cleanup``).

Deleting is allowed only when the viewer's key allows it: the local backup folder, or Supabase
with the secret (service role) key and no user's access token. A user's token, or the anon key,
never deletes (row-level security would refuse anyway; the viewer does not even offer it).
The clean-up endpoint is also authenticated: ``Authorization: Bearer $STEPSDK_VIEWER_TOKEN``.
The deleting itself is ``stepsdk.ops.delete`` / ``stepsdk.ops.retention``, as for the CLI.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from datetime import timedelta
from typing import Annotated, Any

import httpx
from fastapi import Body, Header, HTTPException
from nicegui import app
from postgrest import APIError

from stepsdk.config import supabase_env
from stepsdk.ops import delete as _delete
from stepsdk.ops import local_retention as _local_retention
from stepsdk.ops import retention as _retention
from stepsdk.store.backup import BackupStore

from .data.base import DataSource, Row
from .secret_key import is_secret_key

__all__ = ["can_delete", "cleanup", "delete_task", "is_secret_key", "register", "storage_info"]

log = logging.getLogger("stepsdk.viewer.operations")
TOKEN_ENV = "STEPSDK_VIEWER_TOKEN"


# --------------------------------------------------------------------------- who may delete


def can_delete(source: DataSource) -> bool:
    """Whether this viewer may delete: a backup folder, or Supabase with a secret key and no
    user token (``SupabaseSource.can_delete``)."""
    if _backup_root(source) is not None:
        return True
    return bool(getattr(source, "can_delete", False)) and _client(source) is not None


def _backup_root(source: DataSource) -> Any:
    store = getattr(source, "store", None)
    return store.path if isinstance(store, BackupStore) else None


def _client(source: DataSource) -> Any:
    return getattr(source, "client", None)


def _keep_pending() -> bool:
    """In the backup with Supabase configured, tasks not uploaded yet would be lost: keep them."""
    return bool((supabase_env()[0] or "").strip())


# --------------------------------------------------------------------------- storage figures


def storage_info(source: DataSource) -> Row:
    """Tasks, steps, screenshot rows, distinct objects and their bytes, oldest/newest task and the
    backend's health. A backend that cannot answer gives ``health.ok = false`` (and no figures)."""
    root = _backup_root(source)
    started = time.monotonic()
    try:
        figures = _backup_figures(source) if root is not None else _supabase_figures(source)
        health: Row = {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000, 1)}
    except Exception as exc:  # unreachable, refused, unreadable: report it, do not fail
        log.debug("storage info failed", exc_info=True)
        figures = dict.fromkeys(
            ("tasks", "steps", "screenshots", "objects", "bytes", "oldest_task_at", "newest_task_at")
        )
        health = {"ok": False, "error": _safe_error(source, exc)}
    if root is not None:
        snap_problems = figures.pop("_problems", 0) if health["ok"] else None
        health |= {"problems": snap_problems, "pending": figures.pop("_pending", None)}
    return {
        "backend": "backup" if root is not None else "supabase",
        "source": source.description,
        **figures,
        "health": health,
        "can_delete": can_delete(source),
    }


def _backup_figures(source: Any) -> Row:
    """From the backup's index (no merge of every journal in memory)."""
    state = source.upload_state()
    return source.storage_figures() | {"_problems": len(state.problems), "_pending": state.pending}


def _supabase_figures(source: DataSource) -> Row:
    client = _client(source)
    if client is None:
        raise RuntimeError("this data source has no Supabase client")
    data = client.rpc("stepsdk_storage_info", {}).execute().data
    if not isinstance(data, dict):
        raise RuntimeError(f"stepsdk_storage_info returned {str(data)[:100]}")
    keys = ("tasks", "steps", "screenshots", "objects", "bytes", "oldest_task_at", "newest_task_at")
    return {k: data.get(k) for k in keys}


def _safe_error(source: DataSource, exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    for secret in getattr(source, "_secrets", ()):
        text = text.replace(secret, "[redacted]")
    return text


# --------------------------------------------------------------------------- deleting


def delete_task(source: DataSource, task_id: str) -> Row:
    """Delete one task (steps, screenshot rows, objects no other task uses). Raises
    PermissionError when this viewer may not delete."""
    if not can_delete(source):
        raise PermissionError("this viewer's key does not allow deleting")
    selection = _delete.Selection((task_id,))
    root = _backup_root(source)
    if root is not None:
        result = _delete.delete_backup(root, selection, dry_run=False, keep_pending=_keep_pending())
    else:
        result = _delete.delete_supabase(_client(source), selection, dry_run=False)
    return result.to_dict()


def cleanup(source: DataSource, older_than: timedelta | None, *, dry_run: bool, orphans: bool = False) -> Row:
    """``stepsdk cleanup`` over the viewer's backend. Supabase without an age: only the objects
    the scheduled retention freed. Backup without an age: ``retention_days`` is needed."""
    if not can_delete(source):
        raise PermissionError("this viewer's key does not allow deleting")
    root = _backup_root(source)
    if root is not None:
        if older_than is None:
            raise ValueError("older_than is needed for the local backup")
        local = _retention.BackupRetention(root)
        report = local.run(older_than, dry_run=dry_run, keep_pending=_keep_pending())
        if orphans:
            local.sweep_orphans(older_than, report, dry_run=dry_run)
        if not dry_run:
            _local_retention.record_run(root, _local_retention.age_text(older_than), report, trigger="viewer")
        return report.to_dict()
    remote = _retention.SupabaseRetention(_client(source))
    report = (
        remote.run(older_than, dry_run=dry_run, batch_size=500)
        if older_than is not None
        else _retention.CleanupReport(dry_run=dry_run)
    )
    remote.remove_freed(report, dry_run=dry_run)
    if orphans and older_than is not None:
        remote.sweep_orphans(older_than, report, dry_run=dry_run)
    return report.to_dict()


# --------------------------------------------------------------------------- API routes


def _check_token(authorization: str | None) -> None:
    expected = os.environ.get(TOKEN_ENV) or ""
    if len(expected) < 16:
        raise HTTPException(
            403,
            detail=f"clean-up over the API is off: set {TOKEN_ENV} (16+ characters) "
            "where the viewer runs and send it as a Bearer token",
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(
            401, detail="missing or wrong Bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


def register(source: DataSource) -> None:
    """``GET /api/storage``; ``POST /api/storage/cleanup`` only when this viewer may delete."""

    @app.get(
        "/api/storage",
        tags=["stepsdk"],
        summary="Storage figures: tasks, steps, screenshots, bytes, oldest/newest task, backend health",
    )
    def storage() -> Row:
        return storage_info(source)

    if not can_delete(source):
        return

    @app.post(
        "/api/storage/cleanup",
        tags=["stepsdk"],
        summary="Delete tasks older than an age with their screenshots (Bearer $STEPSDK_VIEWER_TOKEN)",
    )
    def storage_cleanup(
        older_than: Annotated[
            str | None,
            Body(
                embed=True,
                max_length=40,
                description="30d, 12h, 2w, 90m; Supabase: omit to remove only "
                "the objects the scheduled retention freed",
            ),
        ] = None,
        dry_run: Annotated[bool, Body(embed=True)] = True,
        orphans: Annotated[bool, Body(embed=True)] = False,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Row:
        _check_token(authorization)
        try:
            age = _retention.parse_duration(older_than) if older_than is not None else None
            return cleanup(source, age, dry_run=dry_run, orphans=orphans)
        except ValueError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        except (httpx.HTTPError, APIError) as exc:
            raise HTTPException(503, detail=_safe_error(source, exc)) from None
