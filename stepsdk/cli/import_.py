"""``stepsdk import``: load an export into the local backup (``stepsdk resync`` uploads it)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from stepsdk import _export
from stepsdk._backup import T_OBJECTS, T_SHOTS, T_STEPS, BackupStore
from stepsdk.cli._common import (
    CliError,
    Exit,
    add_json_argument,
    backup_dir_from,
    check_backup_dir,
    emit,
    examples_formatter,
    run_safely,
    warn,
)

EPILOG = """\
examples:
  stepsdk import run.zip                     # a teammate's failing run, with its screenshots
  stepsdk import runs.jsonl --backup-dir ./other-backup
  stepsdk import run.json && stepsdk resync  # then upload it to your Supabase project

The file is checked completely first (version, columns, types, ids, zip entry names and sizes,
image hashes); if anything is wrong nothing is imported and the exit status is 65.
Importing the same file twice changes nothing (rows are keyed by their ids). Values that look
like secrets are redacted on the way in, as the recorder does.

exit status: 0 imported; 2 bad arguments; 65 not a valid export (nothing imported);
66 the file or the backup folder is missing or not what it should be.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import", help="load an export (JSON, JSONL or zip) into the local backup",
        description="Load a stepsdk export into the local backup folder, from where "
                    "'stepsdk resync' uploads it.",
        epilog=EPILOG, formatter_class=examples_formatter(),
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="export file: .json, .jsonl or .zip")
    parser.add_argument("--backup-dir", metavar="DIR", type=Path,
                        help="backup folder to import into (default: $STEPSDK_BACKUP_DIR or ./backup)")
    add_json_argument(parser)
    parser.set_defaults(func=run_import)


@run_safely("import")
def run_import(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        exists, is_file = path.exists(), path.is_file()
    except PermissionError:  # a parent folder may not be entered
        raise CliError(f"{path} is not readable (permission denied)", Exit.NO_INPUT) from None
    if not exists:
        raise CliError(f"{path} does not exist", Exit.NO_INPUT)
    if not is_file:
        raise CliError(f"{path} is not a file", Exit.NO_INPUT)
    root = backup_dir_from(args)
    check_backup_dir(root, must_exist=False)
    try:
        loaded = _export.load_export(path)
    except _export.ExportFormatError as exc:
        raise CliError(f"{path} is not a valid stepsdk export: {exc}", Exit.DATA) from None
    except PermissionError:
        raise CliError(f"{path} is not readable", Exit.NO_INPUT) from None
    secrets = tuple(v for v in (os.environ.get("SUPABASE_SECRET_KEY"), os.environ.get("SUPABASE_SERVICE_ROLE_KEY")) if v)
    cleaned = _export.sanitize_bundles(loaded.bundles, secrets)
    if cleaned:
        warn(f"{cleaned} row(s) carried secrets or oversized values: stored redacted/cut, as the recorder would")
    store = BackupStore(root)
    acked = _already_uploaded(store, loaded.bundles)  # read before writing: only older acks count
    try:
        report = _export.import_into_backup(loaded, root)
    except _export.ExportFormatError as exc:
        raise CliError(f"{path} cannot be imported: {exc}", Exit.DATA) from None
    absent = [p for p in _export.storage_paths(loaded.bundles) if store.screenshot_file(p) is None]
    if acked:
        warn(f"{acked} row(s)/object(s) of this file were uploaded from {root} before; 'stepsdk resync' "
             "will not send them again. If they were deleted from Supabase since, import into an empty "
             "folder and resync that: stepsdk import FILE --backup-dir NEW && stepsdk resync --backup-dir NEW")
    if absent:
        warn(f"{len(absent)} screenshot image(s) referenced by the imported steps are not in {path.name} "
             "nor in the backup; 'stepsdk resync' will report them missing unless they are already "
             "in the bucket (share runs with 'stepsdk export --with-screenshots')")
    result = {
        "ok": True, "file": str(path), "backup_dir": str(root), "tasks": report.tasks,
        "steps": report.steps, "screenshots": report.screenshots, "images": report.images,
        "missing_images": absent, "already_uploaded": acked, "sanitized_rows": cleaned, "journal": report.journal,
        "task_ids": [b.task_id for b in loaded.bundles],
    }
    human = (f"imported {report.tasks} task(s), {report.steps} step(s), {report.images} image(s) "
             f"into {root}; run 'stepsdk resync' to upload them")
    emit(args, result, human)
    return Exit.OK


def _already_uploaded(store: BackupStore, bundles: list[_export.TaskBundle]) -> int:
    """Rows and objects this backup already has acknowledgements for (resync skips those)."""
    snap = store.read()
    steps = sum(snap.is_acked(T_STEPS, s["id"]) for b in bundles for s in b.steps)
    shots = sum(snap.is_acked(T_SHOTS, r["id"]) for b in bundles for r in b.screenshots)
    return steps + shots + sum(snap.is_acked(T_OBJECTS, p) for p in _export.storage_paths(bundles))
