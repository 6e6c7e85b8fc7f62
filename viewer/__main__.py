"""``python -m stepsdk.viewer [--backup-dir D | --supabase-url U] [--host 127.0.0.1] [--port 8080]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from stepsdk.errors import ConfigurationError

from . import DEFAULT_HOST


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--backup-dir", help="local backup folder to read (default: $STEPSDK_BACKUP_DIR or ./backup)"
    )
    where.add_argument(
        "--supabase-url",
        help="Supabase project URL; the key comes from SUPABASE_SECRET_KEY "
        "(or SUPABASE_SERVICE_ROLE_KEY), never from the command line",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    parser.add_argument("--show", action="store_true", help="open a browser tab")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the viewer also answers for (repeatable); requests naming any other "
        "host than the listening address or localhost get 421 (DNS rebinding)",
    )
    parser.add_argument(
        "--stale-minutes",
        type=float,
        default=None,
        metavar="N",
        help="a running task with no new step for N minutes shows as stale "
        "(default: $STEPSDK_STALE_MINUTES or 10)",
    )


def serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        print(f"error: --port must be in 1..65535, got {args.port}", file=sys.stderr)  # noqa: T201 - CLI output
        return 2
    from .app import backup_folder, run, source_from_args  # NiceGUI is imported only when serving

    try:
        source = source_from_args(args.backup_dir, args.supabase_url)
    except ConfigurationError as exc:  # 78, as every stepsdk command (README: exit statuses)
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - CLI output
        return 78
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - CLI output
        return 2
    if args.stale_minutes is not None and not args.stale_minutes > 0:
        print("error: --stale-minutes must be > 0", file=sys.stderr)  # noqa: T201 - CLI output
        return 2
    folder = None if args.supabase_url else backup_folder(args.backup_dir)
    if folder is not None and not Path(folder).is_dir():
        print(  # noqa: T201 - CLI output
            f"note: no backup folder at {folder} (nothing recorded there yet?): the viewer starts empty; "
            "use --backup-dir or $STEPSDK_BACKUP_DIR to point at one",
            file=sys.stderr,
        )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(  # noqa: T201 - CLI output
        f"stepsdk viewer on {source.description}: http://{shown}:{args.port}/  (Ctrl+C to stop)",
        flush=True,
    )
    run(
        source,
        host=args.host,
        port=args.port,
        show=args.show,
        allowed_hosts=args.allowed_host,
        stale_minutes=args.stale_minutes,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stepsdk.viewer", description="Browse recorded agent runs."
    )
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return serve(parser.parse_args(argv))


if __name__ in {"__main__", "__mp_main__"}:
    sys.exit(main())
