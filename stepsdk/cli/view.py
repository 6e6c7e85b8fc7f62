"""``stepsdk view``: open the viewer on the backup folder or a Supabase project."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "view",
        help="browse recorded tasks in a local web viewer",
        description="Serve the stepsdk viewer (tasks, step-by-step replay, statistics, JSON API) on "
        "http://127.0.0.1:8080 by default.",
        epilog="examples:\n  stepsdk view\n  stepsdk view --backup-dir ./backup --port 9000\n"
        "  stepsdk view run.zip              browse an export without importing it\n"
        "  SUPABASE_SECRET_KEY=... stepsdk view --supabase-url https://xyz.supabase.co",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    try:
        from stepsdk.viewer.__main__ import add_arguments
    except ImportError:  # the viewer extra (nicegui) is not installed
        parser.set_defaults(func=_missing)
        return
    add_arguments(parser)
    parser.add_argument(
        "export",
        nargs="?",
        metavar="EXPORT",
        help="an export file (zip, JSON or JSONL from 'stepsdk export') to browse as is",
    )
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from stepsdk.viewer.__main__ import serve

    if getattr(args, "export", None):
        return _serve_export(args)
    return serve(args)


def _serve_export(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from stepsdk.errors import ExportFormatError
    from stepsdk.ops.import_ import load_export
    from stepsdk.share.view_export import export_as_backup
    from stepsdk.viewer.__main__ import serve

    if args.backup_dir or args.supabase_url:
        sys.stderr.write(
            "stepsdk view: error: EXPORT cannot be combined with --backup-dir or --supabase-url\n"
        )
        return 2
    try:
        loaded = load_export(Path(args.export))
    except ExportFormatError as exc:
        sys.stderr.write(f"stepsdk view: error: {args.export} is not a valid export: {exc}\n")
        return 65
    except OSError as exc:
        sys.stderr.write(f"stepsdk view: error: cannot read {args.export}: {exc.strerror or exc}\n")
        return 66
    with export_as_backup(loaded) as (folder, tasks):
        sys.stderr.write(f"viewing {tasks} task(s) of {args.export} (a temporary copy, not imported)\n")
        args.backup_dir = str(folder)
        return serve(args)


def _missing(args: argparse.Namespace) -> int:
    import sys

    sys.stderr.write("the viewer needs its extra: pip install 'stepsdk[viewer]'\n")
    return 2
