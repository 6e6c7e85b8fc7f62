"""``stepsdk resync``: upload everything pending in the local backup to Supabase, exactly once."""

from __future__ import annotations

import argparse
from typing import Any

from stepsdk.cli._common import (
    CliError,
    Exit,
    add_json_argument,
    backup_dir_from,
    check_backup_dir,
    emit,
    examples_formatter,
    interactive,
    resolve_config,
    run_safely,
)
from stepsdk.ops.resync import Resync

EPILOG = """examples:
  stepsdk resync                      upload ./backup (or $STEPSDK_BACKUP_DIR)
  stepsdk resync --dry-run            only count what is pending
  stepsdk resync --backup-dir /data/backup --json

exit status: 0 everything uploaded; 1 something is left (see "could not upload");
69 Supabase unreachable; 78 Supabase not configured; 66 bad backup folder."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "resync",
        help="upload the local backup to Supabase (idempotent)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=examples_formatter(),
    )
    p.add_argument(
        "--backup-dir", metavar="DIR", help="backup folder (default: $STEPSDK_BACKUP_DIR or ./backup)"
    )
    p.add_argument("--dry-run", action="store_true", help="count what is pending, upload nothing")
    p.add_argument("--batch-size", type=int, default=200, metavar="N", help="rows per request (default 200)")
    add_json_argument(p)
    p.set_defaults(func=run)


@run_safely("resync")
def run(args: argparse.Namespace) -> int:
    folder = backup_dir_from(args)
    check_backup_dir(folder, must_exist=True)
    if not 1 <= args.batch_size <= 1000:
        raise CliError("--batch-size must be between 1 and 1000", Exit.USAGE)
    config = resolve_config(folder)
    if not args.dry_run and not config.remote:
        raise CliError(
            "Supabase is not configured: set SUPABASE_URL and SUPABASE_SECRET_KEY "
            "(or SUPABASE_SERVICE_ROLE_KEY)",
            Exit.CONFIG,
        )
    bars = _progress(args)
    with bars as advance:
        job = Resync(folder, config, args.batch_size, progress=advance, totals=bars.set_totals)
        report = job.run(dry_run=args.dry_run)  # a ResyncError's status: exit_status (cli/_common.py)
    emit(args, report.to_dict(), _human(report))
    return Exit.OK if report.ok or (args.dry_run and not report.failed) else Exit.FAILED


class _progress:
    """A rich progress bar per stage on stderr, only for a person at a terminal."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.enabled = interactive(args)
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda stage, n: None
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(console=Console(stderr=True), transient=True)
        self.bar.__enter__()

        def advance(stage: str, n: int) -> None:
            if stage not in self.tasks:
                self.tasks[stage] = self.bar.add_task(f"uploading {stage}", total=None)
            self.bar.advance(self.tasks[stage], n)

        return advance

    def set_totals(self, counts: dict[str, int]) -> None:
        if self.bar is None:
            return
        for stage, total in counts.items():
            if total:
                self.tasks[stage] = self.bar.add_task(f"uploading {stage}", total=total)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _human(report: Any) -> str:
    if report.dry_run:
        lines = ["dry run: nothing uploaded", "pending: " + _counts(report.remaining)]
    else:
        lines = [
            f"uploaded: {_counts(report.uploaded)}",
            f"skipped (already in Supabase): {_counts(report.skipped)}",
        ]
        if report.failed:
            lines.append(f"could not upload: {len(report.failed)}")
            for item in report.failed[:20]:
                err = item["error"] or {}
                lines.append(f"  {item['table']} {item['id']}: {err.get('code')}: {err.get('message')}")
            if len(report.failed) > 20:
                lines.append(f"  ... and {len(report.failed) - 20} more (use --json)")
        if report.aborted:
            lines.append(f"stopped: {report.aborted}")
        lines.append(f"left in the backup: {_counts(report.remaining)}")
        if report.archived:
            lines.append(f"archived journals: {report.archived}")
    if report.quarantined:
        lines.append(f"quarantined corrupt records: {report.quarantined}")
    for task_id in report.abandoned:
        lines.append(f"marked interrupted (its recording process is gone): {task_id}")
    for problem in report.problems[:10]:
        lines.append(f"problem: {problem}")
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items())
