"""The retention in force and its last run, for ``stepsdk status``: locally ``retention_days``
(``STEPSDK_RETENTION_DAYS``) and ``<backup>/retention.json``; in Supabase the pg_cron job and
the last logged run (``public.stepsdk_retention_status()``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx

from stepsdk.backend.retry import one_line
from stepsdk.config import Config
from stepsdk.ops.local_retention import last_run

log = logging.getLogger(__name__)


def collect(folder: Path, config: Config, *, remote_ok: bool) -> dict[str, Any]:
    info: dict[str, Any] = {"local": {"retention_days": config.retention_days, "last_run": last_run(folder)}}
    if config.remote and remote_ok:
        info["supabase"] = supabase_status(config)
    return info


def supabase_status(config: Config) -> dict[str, Any]:
    """The answer of ``stepsdk_retention_status()`` or ``{"error": ...}`` (never raises)."""
    from supabase import ClientOptions, create_client

    http = httpx.Client(timeout=httpx.Timeout(config.request_timeout, connect=config.connect_timeout))
    try:
        client = create_client(
            str(config.supabase_url),
            str(config.supabase_key),
            options=ClientOptions(httpx_client=http, postgrest_client_retry=False),
        )
        data = client.rpc("stepsdk_retention_status", {}).execute().data
    except Exception as exc:
        log.debug("retention status unavailable", exc_info=True)
        return {"error": one_line(exc)}
    finally:
        http.close()
    return data if isinstance(data, dict) else {"error": f"unexpected answer: {str(data)[:200]}"}


def human(info: dict[str, Any]) -> list[str]:
    local = info["local"]
    days = local["retention_days"]
    lines = [f"local retention: {f'{days} days (applied when a tracker starts)' if days else 'off'}"]
    run = local["last_run"]
    if run:
        lines.append(
            f"  last local run: {run.get('at')} by {run.get('trigger')} (older than {run.get('older_than')}): "
            f"{run.get('tasks_deleted')} task(s), {run.get('objects_deleted')} object(s) deleted"
        )
    remote = info.get("supabase")
    if remote is None:
        return lines
    if "error" in remote:
        return [*lines, f"Supabase retention: unknown ({remote['error']})"]
    job = remote.get("job")
    if job:
        state = "" if job.get("active") else " (inactive)"
        lines.append(
            f"Supabase retention: older than {job.get('max_age')}, pg_cron '{job.get('schedule')}'{state}"
        )
    else:
        lines.append(
            "Supabase retention: not scheduled" + ("" if remote.get("pg_cron") else " (pg_cron not enabled)")
        )
    cron = remote.get("last_cron_run")
    if cron:
        lines.append(f"  last scheduled run: {cron.get('start_time')} {cron.get('status')}")
    run = remote.get("last_run")
    if run:
        lines.append(
            f"  last retention run: {run.get('started_at')}: {run.get('tasks_deleted')} task(s) deleted, "
            f"{run.get('objects_freed')} object(s) freed"
        )
    if remote.get("freed_objects_pending"):
        lines.append(f"  {remote['freed_objects_pending']} freed object(s) to remove: run 'stepsdk cleanup'")
    return lines
