"""``stepsdk export``: write tasks (with steps and screenshot metadata, optionally the images)."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stepsdk.cli._common import (
    CliError,
    Exit,
    add_source_arguments,
    check_backup_dir,
    emit,
    examples_formatter,
    open_supabase,
    progress,
    resolve_source,
    run_safely,
    warn,
)
from stepsdk.ops import audit as _audit
from stepsdk.ops import export as _export
from stepsdk.ops.retention import parse_duration
from stepsdk.schema import parse_timestamp
from stepsdk.share import cli as share_cli
from stepsdk.store import export_format as _export_format

EPILOG = """\
examples:
  stepsdk export 3f2c-run-17 -o run.json                # one task, everything, as JSON
  stepsdk export 3f2c-run-17 --with-screenshots -o run.zip   # plus the images (share a failing run)
  stepsdk export --status failed --since 7d --format csv -o failures.csv   # one row per step
  stepsdk export --agent checkout-bot --format jsonl > runs.jsonl          # one task per line
  stepsdk export --local --until 2026-11-01 -o old.json  # from the local backup folder

Without TASK_ID, every task matching the filters is exported. The data goes to stdout unless
-o is given (a zip always needs -o). Reads Supabase when SUPABASE_URL and a key are set, else
the local backup ($STEPSDK_BACKUP_DIR or ./backup); --local/--backup-dir force the backup.

  stepsdk export --since 30d --format xlsx -o runs.xlsx    # Excel: a tasks sheet and a steps sheet

CSV: text cells starting with = + - @ tab or CR get a leading ' so a spreadsheet shows them as
text instead of running them as a formula (step data is untrusted); numbers are kept as they are.
xlsx: the same text is stored as a text cell with Excel's quote prefix (never evaluated).

exit status: 0 done; 1 some screenshot objects could not be fetched (listed in the zip);
2 bad arguments; 66 a task not found or a bad backup folder; 69 Supabase unreachable;
78 Supabase not configured or the key rejected.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export tasks to JSON, JSONL or CSV (optionally a zip with screenshots)",
        description="Export recorded tasks with their steps and screenshot metadata.",
        epilog=EPILOG + "\n" + share_cli.HELP,
        formatter_class=examples_formatter(),
    )
    parser.add_argument(
        "task_ids", nargs="*", metavar="TASK_ID", help="tasks to export (default: all matching)"
    )
    parser.add_argument(
        "--format",
        choices=(*_export_format.FORMATS, "xlsx", *share_cli.FORMATS),
        default="json",
        help="data format (default json; CSV text that looks like a formula gets a leading '; "
        "xlsx: an Excel workbook with a tasks sheet and a steps sheet; "
        "html, gif, webp, mp4, otlp, trajectories: see 'sharing formats' below)",
    )
    parser.add_argument(
        "--with-screenshots",
        action="store_true",
        help="write a zip with the data file and screenshots/<screenshot_path> images",
    )
    parser.add_argument("-o", "--output", metavar="PATH", type=Path, help="output file (default: stdout)")
    filters = parser.add_argument_group("filters")
    filters.add_argument("--status", choices=_export_format.TASK_STATUSES, help="only tasks with this status")
    filters.add_argument("--agent", help="only tasks of this agent")
    filters.add_argument(
        "--since",
        type=time_bound,
        metavar="WHEN",
        help="started at or after WHEN: ISO date/time (no offset means UTC) or an age like 7d, 12h",
    )
    filters.add_argument("--until", type=time_bound, metavar="WHEN", help="started before WHEN (same forms)")
    share_cli.add_arguments(parser)
    add_source_arguments(parser)
    parser.set_defaults(func=run_export)


def time_bound(text: str) -> datetime:
    """``2026-11-01``, ``2026-11-01T12:00:00+02:00`` (naive means UTC) or an age (``7d``)."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    parsed = parse_timestamp(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use an ISO date/time (2026-11-01, 2026-11-01T12:00:00+00:00) "
            "or an age (30d, 12h, 2w, 90m)"
        )
    return parsed


def open_export_source(args: argparse.Namespace) -> _export.ExportSource:
    source = resolve_source(args)
    if source.kind == "supabase":
        return _export.SupabaseExportSource(open_supabase(source))
    check_backup_dir(source.backup_dir, must_exist=True)
    return _export.BackupExportSource(source.backup_dir)


@run_safely("export")
def run_export(args: argparse.Namespace) -> int:
    sharing = args.format in share_cli.FORMATS
    if sharing:
        share_cli.check(args)
    _check_output(args)
    flt = _export.TaskFilter(
        tuple(dict.fromkeys(args.task_ids)), args.status, args.agent, args.since, args.until
    )
    if sharing:
        flt = share_cli.default_filter(args, flt)
    source = open_export_source(args)
    tasks = source.tasks(flt)
    for problem in source.problems:
        warn(f"backup: {problem}")
    found = {t["task_id"] for t in tasks}
    missing = [t for t in flt.task_ids if t not in found]
    if missing:
        narrowed = (
            " (or left out by the filters)" if any((flt.status, flt.agent, flt.since, flt.until)) else ""
        )
        raise CliError(
            f"task(s) not found in the {source.label}{narrowed}: {', '.join(missing)}", Exit.NO_INPUT
        )
    if sharing:
        return share_cli.run(args, source, tasks)
    tally = _export.Tally()
    # Steps are loaded a few tasks at a time while writing: memory stays bounded.
    report = _write(args, tally.watch(_export.iter_bundles(source, tasks)), source)
    for path in report.missing:
        warn(f"screenshot object {path} could not be fetched; listed as missing in the zip")
    _audit.record_for(
        resolve_source(args),
        "export",
        str(args.output or "-"),
        tally.tasks,
        {"steps": tally.steps, "images": report.images},
        getattr(source, "client", None),
    )
    emit(args, _result(args, source, tally, report), _human(args, tally, report), human_to_stderr=True)
    return Exit.OK if not report.missing else Exit.FAILED


def _check_output(args: argparse.Namespace) -> None:
    bad_ids = [t for t in args.task_ids if not 1 <= len(t) <= 200]
    if bad_ids:
        raise CliError(f"a task id has 1 to 200 characters; got one of {len(bad_ids[0])}", Exit.USAGE)
    if args.with_screenshots and args.output is None:
        raise CliError("--with-screenshots writes a zip: give its path with -o", Exit.USAGE)
    if args.format == "xlsx" and args.with_screenshots:
        raise CliError(
            "--with-screenshots writes a zip of JSON, JSONL or CSV; export xlsx on its own", Exit.USAGE
        )
    if args.json and args.output is None and args.format != "otlp":
        raise CliError("--json prints a summary on stdout: give the export file with -o", Exit.USAGE)
    if args.output is not None and args.output.is_dir() and args.format != "trajectories":
        raise CliError(f"output {args.output} is a folder; give a file name", Exit.USAGE)
    if args.output is not None and not args.output.parent.is_dir():
        raise CliError(f"output folder {args.output.parent} does not exist", Exit.CANT_WRITE)


def _result(
    args: argparse.Namespace, source: Any, tally: _export.Tally, report: _export.ZipReport
) -> dict[str, Any]:
    return {
        "ok": not report.missing,
        "source": source.label,
        "format": args.format,
        "output": str(args.output) if args.output else "-",
        "tasks": tally.tasks,
        "steps": tally.steps,
        "screenshots": tally.screenshots,
        "images": report.images,
        "image_bytes": report.image_bytes,
        "missing_images": report.missing,
    }


def _human(args: argparse.Namespace, tally: _export.Tally, report: _export.ZipReport) -> str:
    return (
        f"exported {tally.tasks} task(s), {tally.steps} step(s)"
        + (f", {report.images} image(s)" if args.with_screenshots else "")
        + (f" to {args.output}" if args.output else "")
    )


def _write(
    args: argparse.Namespace, bundles: Iterator[_export_format.TaskBundle], source: Any
) -> _export.ZipReport:
    if args.with_screenshots:
        with progress(args, "screenshots", None) as advance:
            return _export.write_zip(
                args.output, args.format, bundles, source.label, source.screenshot, advance
            )
    if args.format == "xlsx":
        from stepsdk.store.xlsx import write_xlsx  # openpyxl: imported only for this format

        if args.output is None:
            write_xlsx(bundles, sys.stdout.buffer, source.label)
            sys.stdout.buffer.flush()
        else:
            _export_format.write_atomically(args.output, lambda fh: write_xlsx(bundles, fh, source.label))
        return _export.ZipReport()
    writer = _export.WRITERS[args.format]
    if args.output is None:
        writer(bundles, sys.stdout, source.label)
        sys.stdout.flush()
    else:

        def build(fh: Any) -> None:
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
            writer(bundles, text, source.label)
            text.flush()
            text.detach()

        _export_format.write_atomically(args.output, build)
    return _export.ZipReport()
