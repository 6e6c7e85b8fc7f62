"""``stepsdk delete``: delete tasks by id, or one agent's history, with their screenshots."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
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
    resolve_source,
    run_safely,
    supabase_configured,
    warn,
)
from stepsdk.ops import audit as _audit
from stepsdk.ops import delete as _delete

EPILOG = """\
examples:
  stepsdk delete task-123 task-456 --dry-run       # what would go (nothing is deleted)
  stepsdk delete task-123 --yes                    # delete one task without asking
  stepsdk delete --agent phone-bot                 # clear an agent's whole history (asks first)
  stepsdk delete --agent phone-bot --before 2026-01-01 --yes --json
  stepsdk delete task-123 --local                  # in the local backup folder

A task goes with its steps, its screenshot rows and the screenshot objects no other task uses
(content-addressed objects shared with another task are kept). Without --yes the command lists
what it would delete and asks; with no terminal to ask on it refuses (pass --yes).
In the local backup, when Supabase is configured, tasks not uploaded yet are kept unless
--include-pending is given.
exit status: 0 everything asked for was deleted; 1 some ids match no task, some objects could
not be removed or some tasks had to be kept (the output says which); 2 bad arguments or not
confirmed; 66 bad backup folder; 69 Supabase unreachable; 78 Supabase not configured or the key
rejected.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "delete",
        help="delete tasks (by id, or an agent's history) with their steps and screenshots",
        description="Delete tasks with their steps, screenshot rows and screenshot objects.",
        epilog=EPILOG,
        formatter_class=examples_formatter(),
    )
    parser.add_argument("task_ids", nargs="*", metavar="TASK_ID", help="the tasks to delete")
    parser.add_argument("--agent", metavar="NAME", help="delete every task of this agent (clear its history)")
    parser.add_argument(
        "--before",
        type=before_date,
        metavar="DATE",
        help="with --agent: only tasks started before DATE (YYYY-MM-DD, UTC, or ISO date-time)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--include-pending",
        action="store_true",
        help="local backup with Supabase configured: also delete tasks not uploaded yet",
    )
    add_source_arguments(parser)
    parser.set_defaults(func=run_delete)


def before_date(text: str) -> datetime:
    try:
        return _delete.parse_before(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def selection_from(args: argparse.Namespace) -> _delete.Selection:
    if args.task_ids and args.agent is not None:
        raise CliError("give task ids or --agent, not both", Exit.USAGE)
    if not args.task_ids and args.agent is None:
        raise CliError("give the task ids to delete, or --agent NAME", Exit.USAGE)
    if args.before is not None and args.agent is None:
        raise CliError("--before applies to --agent only", Exit.USAGE)
    if args.agent is not None and not args.agent.strip():
        raise CliError("--agent needs a name", Exit.USAGE)
    return _delete.Selection(tuple(args.task_ids), args.agent, args.before)


@run_safely("delete")
def run_delete(args: argparse.Namespace) -> int:
    selection = selection_from(args)
    source = resolve_source(args)
    if not args.dry_run and not args.yes:
        preview = _run(args, source, selection, dry_run=True)
        if not preview.report.task_ids:
            return _finish(args, source, preview)
        _confirm(preview)
    return _finish(args, source, _run(args, source, selection, dry_run=args.dry_run))


def _run(
    args: argparse.Namespace, source: Source, selection: _delete.Selection, *, dry_run: bool
) -> _delete.DeleteResult:
    with progress(args, "deleting tasks", None) as advance:
        if source.kind == "supabase":
            return _delete.delete_supabase(open_supabase(source), selection, dry_run=dry_run, advance=advance)
        check_backup_dir(source.backup_dir, must_exist=True)
        keep_pending = supabase_configured() and not args.include_pending
        return _delete.delete_backup(
            source.backup_dir, selection, dry_run=dry_run, keep_pending=keep_pending, advance=advance
        )


def _confirm(preview: _delete.DeleteResult) -> None:
    ids = preview.report.task_ids
    if not sys.stdin.isatty():
        raise CliError(
            f"would delete {len(ids)} task(s): pass --yes to confirm (no terminal to ask on)", Exit.USAGE
        )
    shown = "\n  ".join(ids[:20]) + ("\n  ..." if len(ids) > 20 else "")
    sys.stderr.write(
        f"about to delete {len(ids)} task(s) and {len(preview.report.objects_deleted)} "
        f"screenshot object(s):\n  {shown}\n"
    )
    sys.stderr.write("delete them? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise CliError("not confirmed: nothing deleted", Exit.USAGE)


def _finish(args: argparse.Namespace, source: Source, result: _delete.DeleteResult) -> int:
    report = result.report
    for problem in [*report.problems, *report.kept_summary()]:
        warn(problem)
    if result.missing:
        warn(f"{len(result.missing)} id(s) match no task: {', '.join(result.missing[:10])}")
    if not report.dry_run and report.task_ids:  # the audit log: who deleted what, when, how many
        _audit.record_for(
            source,
            "delete",
            ", ".join(report.task_ids[:20]),
            len(report.task_ids),
            {"objects": len(report.objects_deleted)},
        )
    verb = "would delete" if report.dry_run else "deleted"
    human = (
        f"{verb} {len(report.task_ids)} task(s) and {len(report.objects_deleted)} screenshot object(s) "
        f"from the {source.label}"
    )
    if report.dry_run and report.task_ids:
        human += "\n  " + "\n  ".join(report.task_ids[:50]) + ("\n  ..." if len(report.task_ids) > 50 else "")
    emit(args, {"source": source.label, **result.to_dict()}, human)
    return Exit.OK if result.ok else Exit.FAILED
