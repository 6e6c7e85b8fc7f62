"""``stepsdk cleanup``: retention, delete tasks older than an age with their screenshots."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from stepsdk.cli._common import (
    CliError,
    Exit,
    Source,
    add_source_arguments,
    check_backup_dir,
    emit,
    examples_formatter,
    open_supabase,
    progress,
    resolve_config,
    resolve_source,
    run_safely,
    supabase_configured,
    warn,
)
from stepsdk.ops import audit as _audit
from stepsdk.ops import local_retention as _local_retention
from stepsdk.ops import retention as _retention

EPILOG = """\
examples:
  stepsdk cleanup --older-than 30d --dry-run     # what would go (nothing is deleted)
  stepsdk cleanup --older-than 30d               # delete tasks started more than 30 days ago
  stepsdk cleanup --older-than 2w --local        # the same in the local backup folder
  stepsdk cleanup --older-than 90d --batch-size 200 --json   # from cron, machine-readable
  stepsdk cleanup --older-than 7d --orphans      # also objects no row references (after failures)
  stepsdk cleanup                                # Supabase: remove the objects the scheduled
                                                 # retention (pg_cron) freed; local backup:
                                                 # apply STEPSDK_RETENTION_DAYS

Durations: a number and a unit, m (minutes), h (hours), d (days), w (weeks): 90m, 12h, 30d, 2w,
or combined (1w3d). A task goes with its steps, its screenshot rows and the screenshot objects
no remaining task uses (content-addressed objects shared with a newer task are kept).
In the local backup, when Supabase is configured, tasks not uploaded yet are kept (they would be
lost) unless --include-pending is given.
Scheduled retention: in Supabase, pg_cron runs public.stepsdk_run_retention (see
supabase/README.md); the screenshot objects it frees are queued and every Supabase cleanup
removes them, so run `stepsdk cleanup` from cron after the job. Locally, set
STEPSDK_RETENTION_DAYS (trackers apply it when they start) or run
`stepsdk cleanup --local --older-than 30d` from cron. `stepsdk status` shows the last run.
exit status: 0 everything old was deleted; 1 some objects could not be removed or some tasks had
to be kept (the output says which and why); 2 bad arguments; 66 bad backup folder;
69 Supabase unreachable; 78 Supabase not configured or the key rejected.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cleanup",
        help="delete tasks older than an age, with their steps and screenshots",
        description="Delete old tasks with their steps, screenshot rows and screenshot objects.",
        epilog=EPILOG,
        formatter_class=examples_formatter(),
    )
    parser.add_argument(
        "--older-than",
        type=duration,
        metavar="AGE",
        help="delete tasks started more than AGE ago (30d, 12h, 2w, 90m); default: "
        "$STEPSDK_RETENTION_DAYS locally, only the objects freed by the scheduled "
        "retention in Supabase",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")
    parser.add_argument(
        "--orphans",
        action="store_true",
        help="also delete screenshot objects no row references that are older than AGE "
        "(left by a failed removal or a crash)",
    )
    parser.add_argument(
        "--include-pending",
        action="store_true",
        help="local backup with Supabase configured: also delete tasks not uploaded yet",
    )
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        default=500,
        metavar="N",
        help="tasks deleted per transaction (1..10000, default 500)",
    )
    add_source_arguments(parser)
    parser.set_defaults(func=run_cleanup)


def duration(text: str) -> timedelta:
    try:
        return _retention.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= _retention.MAX_BATCH:
        raise argparse.ArgumentTypeError(
            f"invalid batch size {text!r}: use a whole number from 1 to {_retention.MAX_BATCH}"
        )
    return value


@run_safely("cleanup")
def run_cleanup(args: argparse.Namespace) -> int:
    source = resolve_source(args)
    if args.orphans and args.older_than is None:
        raise CliError(
            "--orphans needs --older-than (objects younger than AGE may be being written)", Exit.USAGE
        )
    report = _on_supabase(args, source) if source.kind == "supabase" else _on_backup(args, source)
    if not report.dry_run:
        _audit.record_for(
            source,
            "cleanup",
            f"older than {report.cutoff}",
            len(report.task_ids),
            {
                "objects": len(report.objects_deleted),
                "orphans": len(report.orphans),
                "task_ids": report.task_ids[:100],
            },
        )
    for problem in [*report.problems, *report.kept_summary()]:
        warn(problem)
    emit(args, {"source": source.label, **report.to_dict()}, _human(args, report, source))
    return Exit.OK if report.ok else Exit.FAILED


def _on_supabase(args: argparse.Namespace, source: Source) -> _retention.CleanupReport:
    from postgrest.exceptions import APIError

    retention = _retention.SupabaseRetention(open_supabase(source))
    if args.older_than is None:
        report = _retention.CleanupReport(dry_run=args.dry_run)
    else:
        total = None if args.dry_run else retention.count_older(args.older_than)
        with progress(args, "deleting tasks", total) as advance:
            report = retention.run(
                args.older_than, dry_run=args.dry_run, batch_size=args.batch_size, advance=advance
            )
    try:  # the objects the scheduled retention (pg_cron) freed
        retention.remove_freed(report, dry_run=args.dry_run)
    except APIError as exc:
        if exc.code not in ("PGRST205", "42P01") or args.older_than is None:
            raise
        warn("no stepsdk_freed_objects table: apply the migrations (20261130001401) for scheduled retention")
    if args.orphans:
        retention.sweep_orphans(args.older_than, report, dry_run=args.dry_run)
    return report


def _on_backup(args: argparse.Namespace, source: Source) -> _retention.CleanupReport:
    check_backup_dir(source.backup_dir, must_exist=True)
    if args.older_than is None:
        days = resolve_config(source.backup_dir).retention_days
        if days is None:
            raise CliError("give --older-than AGE, or set STEPSDK_RETENTION_DAYS", Exit.USAGE)
        args.older_than = timedelta(days=days)
    local = _retention.BackupRetention(source.backup_dir)
    # With Supabase configured the backup is only a buffer: a task not uploaded yet would be lost.
    keep_pending = supabase_configured() and not args.include_pending
    with progress(args, "rewriting journals", None) as advance:
        report = local.run(args.older_than, dry_run=args.dry_run, keep_pending=keep_pending, advance=advance)
    if args.orphans:
        local.sweep_orphans(args.older_than, report, dry_run=args.dry_run)
    if not args.dry_run:
        _local_retention.record_run(
            source.backup_dir, _local_retention.age_text(args.older_than), report, trigger="cleanup"
        )
    return report


def _human(args: argparse.Namespace, report: _retention.CleanupReport, source: Source) -> str:
    verb = "would delete" if report.dry_run else "deleted"
    more = " (and more not listed)" if report.more_not_listed else ""
    text = (
        f"{verb} {len(report.task_ids)} task(s){more} and {len(report.objects_deleted)} screenshot "
        f"object(s) from the {source.label}" + (f" (older than {report.cutoff})" if report.cutoff else "")
    )
    if report.freed:
        text += f"; {verb} {len(report.freed)} object(s) freed by the scheduled retention"
    if args.orphans:
        text += f"; {verb} {len(report.orphans)} orphaned screenshot object(s)"
    if report.dry_run and report.task_ids:
        text += "\n  " + "\n  ".join(report.task_ids[:50]) + ("\n  ..." if len(report.task_ids) > 50 else "")
    return text
