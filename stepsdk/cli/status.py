"""``stepsdk status``: is Supabase reachable, what is pending in the backup, what was refused."""

from __future__ import annotations

import argparse
from typing import Any

from stepsdk._abandoned import abandoned_tasks
from stepsdk._backup import BackupStore, JournalWriter, dead_writer_journals, new_writer_name
from stepsdk._config import Config
from stepsdk._resync import mark_abandoned, pending_counts
from stepsdk._retry import one_line
from stepsdk.cli._common import (
    Exit,
    add_json_argument,
    backup_dir_from,
    check_backup_dir,
    emit,
    examples_formatter,
    resolve_config,
    run_safely,
)

EPILOG = """examples:
  stepsdk status
  stepsdk status --backup-dir /data/backup --json"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="backend reachability and what the backup still holds",
                              description=__doc__, epilog=EPILOG, formatter_class=examples_formatter())
    p.add_argument("--backup-dir", metavar="DIR", help="backup folder (default: $STEPSDK_BACKUP_DIR or ./backup)")
    add_json_argument(p)
    p.set_defaults(func=run)


def backend_status(config: Config) -> dict[str, Any]:
    """{"configured", "reachable", "reason"}: one quick probe, never the key."""
    if not config.remote:
        return {"configured": False, "reachable": None, "url": None,
                "reason": "SUPABASE_URL / SUPABASE_SECRET_KEY not set (local mode)"}
    from stepsdk._supabase_sink import SupabaseSink

    sink = SupabaseSink(config)
    try:
        sink.probe()
    except Exception as exc:
        return {"configured": True, "reachable": False, "url": config.supabase_url, "reason": one_line(exc)}
    finally:
        sink.close()
    return {"configured": True, "reachable": True, "url": config.supabase_url, "reason": None}


def collect(folder: Any, config: Config) -> dict[str, Any]:
    store = BackupStore(folder)
    snap = store.read()
    abandoned: list[str] = []
    if dead_writer_journals(folder) and abandoned_tasks(snap):
        # Tasks left running by a recorder that died: mark them interrupted (a journal of this
        # run, uploaded by the next `stepsdk resync`).
        writer = JournalWriter(folder, new_writer_name("s"))
        try:
            abandoned = mark_abandoned(snap, writer)
        finally:
            writer.close()
    return {
        "abandoned": abandoned,
        "backend": backend_status(config),
        "backup_dir": str(folder),
        "pending": pending_counts(snap) | {"bytes": store.pending_bytes(snap)},
        "rejected": [{"table": t, "id": k, **v} for (t, k), v in sorted(snap.rejected.items())],
        "problems": snap.problems,
        "last_upload_at": snap.last_upload_at,
        "tasks_in_backup": len(snap.tasks),
    }


@run_safely("status")
def run(args: argparse.Namespace) -> int:
    folder = backup_dir_from(args)
    check_backup_dir(folder, must_exist=False)
    config = resolve_config(folder, connect_timeout=3.0, request_timeout=5.0)
    info = collect(folder, config)
    emit(args, info, _human(info))
    return Exit.OK


def _human(info: dict[str, Any]) -> str:
    b = info["backend"]
    if not b["configured"]:
        backend = f"backend: local mode ({b['reason']})"
    elif b["reachable"]:
        backend = f"backend: Supabase {b['url']} reachable"
    else:
        backend = f"backend: Supabase {b['url']} NOT reachable: {b['reason']}"
    p = info["pending"]
    lines = [backend, f"backup: {info['backup_dir']} ({info['tasks_in_backup']} tasks)",
             f"pending: {p['tasks']} tasks, {p['task_steps']} steps, {p['step_screenshots']} screenshots "
             f"({p['objects']} objects, {p['bytes']} bytes)",
             f"last successful upload: {info['last_upload_at'] or 'never'}"]
    for task_id in info["abandoned"]:
        lines.append(f"marked interrupted (its recording process is gone): {task_id}")
    if info["rejected"]:
        lines.append(f"rejected by Supabase: {len(info['rejected'])}")
        for r in info["rejected"][:20]:
            err = r.get("error") or {}
            lines.append(f"  {r['table']} {r['id']}: {err.get('code')}: {err.get('message')}")
    for problem in info["problems"][:10]:
        lines.append(f"problem: {problem}")
    return "\n".join(lines)
