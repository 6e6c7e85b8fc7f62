"""The ``stepsdk`` command line: one module per command, registered here."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Each module exposes ``register(subparsers)`` which adds its sub-command and sets ``func``
# (``func(args) -> int``, the exit status). Order is the order shown in ``--help``.
_COMMAND_MODULES = (
    "demo",
    "view",
    "status",
    "resync",
    "export",
    "import_",
    "cleanup",
    "delete",
    "db",
    "alerts",
    "audit",
)


def _version() -> str:
    from stepsdk import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepsdk",
        description="Record and inspect AI agent runs step by step.",
        epilog="Run 'stepsdk COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"stepsdk {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"stepsdk.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"stepsdk.cli.{name}":
                raise
            continue  # not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request URL at INFO: noise for a command's user; kept for -v.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
