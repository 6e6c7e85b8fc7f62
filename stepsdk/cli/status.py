"""``stepsdk status``: is Supabase reachable, what is pending in the backup, what was refused,
the retention in force and its last run.

Exit status: 0; 69 when Supabase is configured but cannot be reached; 78 when it answers but
rejects the key (the report is printed either way)."""

from __future__ import annotations

import argparse
from typing import Any

from stepsdk.backend.retry import one_line
from stepsdk.cli._common import (
    CliError,
    Exit,
    add_json_argument,
    backup_dir_from,
    check_backup_dir,
    describe_backend_error,
    emit,
    examples_formatter,
    resolve_config,
    run_safely,
)
from stepsdk.config import Config
from stepsdk.ops import retention_status as _retention_status
from stepsdk.ops.resync import mark_abandoned
from stepsdk.recording.abandoned import abandoned_tasks
from stepsdk.store.backup import BackupStore, JournalWriter, dead_writer_journals, new_writer_name
from stepsdk.store.upload_state import read_upload_state

EPILOG = """examples:
  stepsdk status
  stepsdk status --backup-dir /data/backup --json

exit status: 0 fine (or local mode); 69 Supabase configured but unreachable; 78 Supabase
rejects the key; 66 bad backup folder."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "status",
        help="backend reachability and what the backup still holds",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=examples_formatter(),
    )
    p.add_argument(
        "--backup-dir", metavar="DIR", help="backup folder (default: $STEPSDK_BACKUP_DIR or ./backup)"
    )
    add_json_argument(p)
    p.set_defaults(func=run)


def backend_status(config: Config) -> dict[str, Any]:
    """{"configured", "reachable", "reason"}: one quick probe, never the key."""
    if not config.remote:
        return {
            "configured": False,
            "reachable": None,
            "url": None,
            "reason": "SUPABASE_URL / SUPABASE_SECRET_KEY not set (local mode)",
        }
    from stepsdk.backend.supabase_sink import SupabaseSink

    sink = SupabaseSink(config)
    try:
        sink.probe()
    except Exception as exc:
        described = describe_backend_error(exc)
        rejected = described is not None and described[1] == Exit.CONFIG
        return {
            "configured": True,
            "reachable": False,
            "url": config.supabase_url,
            "reason": one_line(exc),
            "key_rejected": rejected,
        }
    finally:
        sink.close()
    return {"configured": True, "reachable": True, "url": config.supabase_url, "reason": None}


def collect(folder: Any, config: Config) -> dict[str, Any]:
    abandoned: list[str] = []
    if dead_writer_journals(folder):
        # A recorder died without closing its journal (rare): tasks it left running are marked
        # interrupted (a journal of this run, uploaded by the next `stepsdk resync`). Only then
        # are the journals merged in memory; the figures below come from the backup's index.
        snap = BackupStore(folder).read()
        if abandoned_tasks(snap):
            writer = JournalWriter(folder, new_writer_name("s"))
            try:
                abandoned = mark_abandoned(snap, writer)
            finally:
                writer.close()
    state = read_upload_state(folder)
    backend = backend_status(config)
    return {
        "abandoned": abandoned,
        "backend": backend,
        "backup_dir": str(folder),
        "pending": state.pending | {"bytes": state.pending_bytes(folder)},
        "rejected": state.rejected,
        "problems": state.problems,
        "last_upload_at": state.last_upload_at,
        "tasks_in_backup": state.tasks,
        "retention": _retention_status.collect(folder, config, remote_ok=bool(backend["reachable"])),
    }


@run_safely("status")
def run(args: argparse.Namespace) -> int:
    folder = backup_dir_from(args)
    if not folder.exists():  # nothing recorded there (or a wrong folder): say so, fail
        raise CliError(
            f"backup folder {folder} does not exist: nothing was recorded there yet, or "
            "--backup-dir / $STEPSDK_BACKUP_DIR points elsewhere",
            Exit.NO_INPUT,
        )
    check_backup_dir(folder, must_exist=True)
    config = resolve_config(folder, connect_timeout=3.0, request_timeout=5.0)
    info = collect(folder, config)
    emit(args, info, _human(info))
    backend = info["backend"]
    if backend["configured"] and not backend["reachable"]:
        return Exit.CONFIG if backend.get("key_rejected") else Exit.UNAVAILABLE
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
    lines = [
        backend,
        f"backup: {info['backup_dir']} ({info['tasks_in_backup']} tasks)",
        f"pending: {p['tasks']} tasks, {p['task_steps']} steps, {p['step_screenshots']} screenshots "
        f"({p['objects']} objects, {p['bytes']} bytes)",
        f"last successful upload: {info['last_upload_at'] or 'never'}",
    ]
    for task_id in info["abandoned"]:
        lines.append(f"marked interrupted (its recording process is gone): {task_id}")
    if info["rejected"]:
        lines.append(f"rejected by Supabase: {len(info['rejected'])}")
        for r in info["rejected"][:20]:
            err = r.get("error") or {}
            lines.append(f"  {r['table']} {r['id']}: {err.get('code')}: {err.get('message')}")
    lines += _retention_status.human(info["retention"])
    for problem in info["problems"][:10]:
        lines.append(f"problem: {problem}")
    return "\n".join(lines)
