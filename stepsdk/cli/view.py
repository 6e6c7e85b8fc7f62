"""``stepsdk view``: open the viewer on the backup folder or a Supabase project."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "view", help="browse recorded tasks in a local web viewer",
        description="Serve the stepsdk viewer (tasks, step-by-step replay, statistics, JSON API) on "
                    "http://127.0.0.1:8080 by default.",
        epilog="examples:\n  stepsdk view\n  stepsdk view --backup-dir ./backup --port 9000\n"
               "  SUPABASE_SECRET_KEY=... stepsdk view --supabase-url https://xyz.supabase.co",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        from viewer.__main__ import add_arguments
    except ImportError:  # the viewer extra (nicegui) is not installed
        parser.set_defaults(func=_missing)
        return
    add_arguments(parser)
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from viewer.__main__ import serve

    return serve(args)


def _missing(args: argparse.Namespace) -> int:
    import sys

    sys.stderr.write("the viewer needs its extra: pip install 'stepsdk[viewer]'\n")
    return 2
