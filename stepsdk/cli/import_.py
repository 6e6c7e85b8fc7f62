"""``stepsdk import``: load an export into the local backup (``stepsdk resync`` uploads it)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

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
from stepsdk.config import SUPABASE_KEY_VARS
from stepsdk.ops import audit as _audit
from stepsdk.ops import import_ as _import
from stepsdk.store import export_format as _export_format
from stepsdk.store.backup import BackupStore

EPILOG = """\
examples:
  stepsdk import run.zip                     # a teammate's failing run, with its screenshots
  stepsdk import runs.jsonl --backup-dir ./other-backup
  stepsdk import run.json && stepsdk resync  # then upload it to your Supabase project
  ssh prod stepsdk export 3f2c-run-17 | stepsdk import -     # straight from another machine

The file is checked completely first (version, columns, types, ids, zip entry names and sizes,
image hashes); if anything is wrong nothing is imported and the exit status is 65.
Importing the same file twice changes nothing (rows are keyed by their ids). Values that look
like secrets are redacted on the way in, as the recorder does.

exit status: 0 imported; 2 bad arguments; 65 not a valid export (nothing imported);
66 the file or the backup folder is missing or not what it should be.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import",
        help="load an export (JSON, JSONL or zip) into the local backup",
        description="Load a stepsdk export into the local backup folder, from where "
        "'stepsdk resync' uploads it.",
        epilog=EPILOG,
        formatter_class=examples_formatter(),
    )
    parser.add_argument(
        "file", type=Path, metavar="FILE", help="export file: .json, .jsonl or .zip; - reads stdin"
    )
    parser.add_argument(
        "--backup-dir",
        metavar="DIR",
        type=Path,
        help="backup folder to import into (default: $STEPSDK_BACKUP_DIR or ./backup)",
    )
    add_json_argument(parser)
    parser.set_defaults(func=run_import)


@run_safely("import")
def run_import(args: argparse.Namespace) -> int:
    root = backup_dir_from(args)
    if str(args.file) == "-":
        with tempfile.TemporaryDirectory(prefix="stepsdk-import-") as tmp:
            copy = Path(tmp) / "stdin"
            _copy_stdin(copy)
            check_backup_dir(root, must_exist=False)
            return _import_loaded(args, _load(copy, "stdin"), root)
    _check_file(args.file)
    check_backup_dir(root, must_exist=False)
    return _import_loaded(args, _load(args.file, str(args.file)), root)


def _check_file(path: Path) -> None:
    try:
        exists, is_file = path.exists(), path.is_file()
    except PermissionError:  # a parent folder may not be entered
        raise CliError(f"{path} is not readable (permission denied)", Exit.NO_INPUT) from None
    if not exists:
        raise CliError(f"{path} does not exist", Exit.NO_INPUT)
    if not is_file:
        raise CliError(f"{path} is not a file", Exit.NO_INPUT)


def _copy_stdin(target: Path) -> None:
    """``-``: stdin to a private temp file (a zip needs seeking), within the import size limit."""
    limit = _import.Limits().max_total_bytes
    copied = 0
    with target.open("wb") as out:
        while chunk := sys.stdin.buffer.read(1 << 20):
            copied += len(chunk)
            if copied > limit:
                raise CliError(f"stdin: more than {limit} bytes; not a stepsdk export", Exit.DATA)
            out.write(chunk)


def _load(path: Path, label: str) -> _import.LoadedExport:
    try:
        return _import.load_export(path)
    except _import.ExportFormatError as exc:
        raise CliError(f"{label} is not a valid stepsdk export: {exc}", Exit.DATA) from None
    except PermissionError:
        raise CliError(f"{label} is not readable", Exit.NO_INPUT) from None


def _import_loaded(args: argparse.Namespace, loaded: _import.LoadedExport, root: Path) -> int:
    secrets = tuple(v for v in map(os.environ.get, SUPABASE_KEY_VARS) if v)  # both, if both are set
    cleaned = _import.sanitize_bundles(loaded.bundles, secrets)
    store = BackupStore(root)
    try:
        report = _import.import_into_backup(loaded, root)
    except _import.ExportFormatError as exc:
        raise CliError(f"{args.file} cannot be imported: {exc}", Exit.DATA) from None
    absent = [p for p in _export_format.screenshot_paths(loaded.bundles) if store.screenshot_file(p) is None]
    _warn_about(cleaned, absent)
    _audit.record(
        "import",
        str(args.file),
        report.tasks,
        {"steps": report.steps, "images": report.images},
        backup_dir=root,
    )
    result = {
        "ok": True,
        "file": str(args.file),
        "backup_dir": str(root),
        "tasks": report.tasks,
        "steps": report.steps,
        "screenshots": report.screenshots,
        "images": report.images,
        "missing_images": absent,
        "sanitized_rows": cleaned,
        "journal": report.journal,
        "task_ids": [b.task_id for b in loaded.bundles],
    }
    human = (
        f"imported {report.tasks} task(s), {report.steps} step(s), {report.images} image(s) "
        f"into {root}; run 'stepsdk resync' to upload them"
    )
    emit(args, result, human)
    return Exit.OK


def _warn_about(cleaned: int, absent: list[str]) -> None:
    if cleaned:
        warn(
            f"{cleaned} row(s) carried secrets or oversized values: stored redacted/cut, as the recorder would"
        )
    if absent:
        warn(
            f"{len(absent)} screenshot image(s) referenced by the imported steps are neither in the file "
            "nor in the backup; 'stepsdk resync' will report them missing unless they are already "
            "in the bucket (share runs with 'stepsdk export --with-screenshots')"
        )
