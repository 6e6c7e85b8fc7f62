"""``stepsdk demo``: record a simulated phone agent run, then open it in the viewer."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from stepsdk.integrations.demo_agent import DemoRun

_log = logging.getLogger("stepsdk.cli.demo")

EXAMPLES = """examples:
  stepsdk demo                      record the demo task into ./backup and open the viewer
  stepsdk demo --no-view            record only; print the task id and where it went
  stepsdk demo --backup-dir /tmp/b --port 8090
  SUPABASE_URL=... SUPABASE_SECRET_KEY=... stepsdk demo --no-view   record into Supabase
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "demo",
        help="record a demo agent run (simulated phone agent) and open it in the viewer",
        description="Record a realistic demo task (a simulated phone agent turning on Wi-Fi: screenshots,\n"
        "thinking, taps, a failed tap and its retry, a validation) through the real StepTracker, into\n"
        "Supabase when SUPABASE_URL and a key are set, else into the local backup; then open the viewer.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--no-view", action="store_true", help="record only, do not start the viewer")
    parser.add_argument(
        "--backup-dir",
        type=Path,
        default=None,
        help="backup folder (default: $STEPSDK_BACKUP_DIR or ./backup)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="viewer address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8080, help="viewer port (default 8080)")
    parser.add_argument(
        "--pace",
        type=_pace,
        default=None,
        metavar="FACTOR",
        help="time scale of the simulated run: 1 = real time (~16 s), 0 = instant (default 0.2)",
    )
    parser.set_defaults(func=run)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {port}")
    return port


def _pace(text: str) -> float:
    try:
        pace = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= pace <= 10:
        raise argparse.ArgumentTypeError(f"pace must be between 0 and 10, got {pace}")
    return pace


def _port_free(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return True  # let the viewer report an unusable host itself
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is fine
        try:
            sock.bind(address)
        except OSError:
            return False
    return True


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from stepsdk.integrations.demo_agent import DEFAULT_PACE, record_demo

    pace = DEFAULT_PACE if args.pace is None else args.pace
    if not args.no_view and not _port_free(args.host, args.port):  # say so before recording anything
        sys.stderr.write(
            f"stepsdk demo: {args.host}:{args.port} is already in use; choose another --port "
            "(or --no-view to record only)\n"
        )
        return 2
    try:
        demo = record_demo(backup_dir=args.backup_dir, pace=pace)
    except (TypeError, ValueError) as exc:  # bad configuration (URL, key, folder): say so plainly
        sys.stderr.write(f"stepsdk demo: {exc}\n")
        return 2
    if demo.mode == "supabase" and not demo.uploaded:
        _out(
            f"Recorded demo task {demo.task_id} ({demo.steps} steps), but Supabase at {demo.destination} did not "
            f"take it (unreachable or refused): it is in the local backup in {demo.backup_dir}; "
            "`stepsdk status` says why, `stepsdk resync` uploads it later"
        )
        demo = dataclasses.replace(demo, mode="local", destination=demo.backup_dir)
    else:
        where = "Supabase at" if demo.mode == "supabase" else "the local backup in"
        _out(f"Recorded demo task {demo.task_id} ({demo.steps} steps) into {where} {demo.destination}")
    if args.no_view:
        return 0
    return _start_viewer(args, demo)


def _start_viewer(args: argparse.Namespace, demo: DemoRun) -> int:
    """Serve the viewer (``stepsdk.viewer.app.run``) on the store the demo was recorded into."""
    try:
        from stepsdk.viewer.app import run as run_viewer
        from stepsdk.viewer.app import source_from_args
    except ImportError as exc:  # the viewer extra (nicegui) is not installed
        _out(f"The viewer is not available ({exc}); install it with: pip install 'stepsdk[viewer]'")
        return 0
    remote = demo.mode == "supabase"
    source = source_from_args(None if remote else demo.destination, demo.destination if remote else None)
    host = f"[{args.host}]" if ":" in args.host else args.host
    _out(
        f"Viewer: http://{host}:{args.port}/tasks/{quote(demo.task_id, safe='')}  (all tasks: "
        f"http://{host}:{args.port}/ ; Ctrl+C to stop)"
    )
    run_viewer(source, host=args.host, port=args.port, show=False)
    return 0
