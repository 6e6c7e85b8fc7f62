"""Conventions shared by the ``stepsdk`` commands.

- configuration from the environment (``SUPABASE_URL``, ``SUPABASE_SECRET_KEY`` or
  ``SUPABASE_SERVICE_ROLE_KEY``, ``STEPSDK_BACKUP_DIR`` default ``./backup``);
- the data source: ``--backup-dir DIR`` / ``--local`` → the local backup, otherwise Supabase when
  configured, otherwise the default backup folder;
- ``--json``: one JSON object on stdout for scripts; human messages go to stderr;
- errors: :class:`CliError` (and the usual backend failures) become one line on stderr and an
  exit status from :class:`Exit`, never a traceback (``-v`` adds the traceback for bugs).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import httpx

from stepsdk.config import Config, supabase_env
from stepsdk.errors import (
    BackendUnavailableError,
    ConfigurationError,
    ExportFormatError,
    ResyncError,
    StepSDKError,
)

log = logging.getLogger("stepsdk.cli")

DEFAULT_BACKUP_DIR = "./backup"


class Exit(IntEnum):
    """Exit statuses (sysexits.h numbers so scripts can tell the causes apart)."""

    OK = 0
    FAILED = 1  # the command ran but did not fully succeed (some items failed)
    USAGE = 2  # bad arguments (also what argparse uses)
    DATA = 65  # the input file is not a valid stepsdk export
    NO_INPUT = 66  # a file or folder is missing, not a folder, or unreadable
    INTERNAL = 70  # a bug: please report it
    UNAVAILABLE = 69  # the backend cannot be reached
    CANT_WRITE = 73  # the output cannot be written
    IO = 74  # another file-system error
    CONFIG = 78  # missing or rejected configuration (URL, key)
    INTERRUPTED = 130


class CliError(StepSDKError):
    """A failure with a message meant for the user and an exit status."""

    def __init__(self, message: str, status: Exit = Exit.FAILED) -> None:
        super().__init__(message)
        self.status = status


# The exit status of each kind of stepsdk error, the first that matches (the one place the CLI
# maps errors to statuses; a CliError carries its own).
EXIT_STATUS: tuple[tuple[type[StepSDKError], Exit], ...] = (
    (ConfigurationError, Exit.CONFIG),
    (BackendUnavailableError, Exit.UNAVAILABLE),
    (ExportFormatError, Exit.DATA),
    (ResyncError, Exit.UNAVAILABLE),
    (StepSDKError, Exit.FAILED),
)


def exit_status(exc: StepSDKError) -> Exit:
    if isinstance(exc, CliError):
        return exc.status
    return next(status for kind, status in EXIT_STATUS if isinstance(exc, kind))


@dataclass(frozen=True)
class Source:
    """Where a command reads or writes: the local backup folder or a Supabase project."""

    kind: str  # "backup" | "supabase"
    backup_dir: Path
    url: str | None = None
    key: str | None = None

    def __repr__(self) -> str:  # never show the key
        return f"Source(kind={self.kind!r}, backup_dir={str(self.backup_dir)!r}, url={self.url!r})"

    @property
    def label(self) -> str:
        return f"Supabase {self.url}" if self.kind == "supabase" else f"backup {self.backup_dir}"


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backup-dir`` / ``--local`` (choose the local backup) and ``--json``."""
    group = parser.add_argument_group("data source")
    group.add_argument(
        "--backup-dir",
        metavar="DIR",
        type=Path,
        help="use this local backup folder (default: $STEPSDK_BACKUP_DIR or ./backup)",
    )
    group.add_argument(
        "--local",
        action="store_true",
        help="use the local backup even when Supabase is configured",
    )
    add_json_argument(parser)


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (for scripts)")


def backup_dir_from(args: argparse.Namespace, env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    chosen = getattr(args, "backup_dir", None)
    return Path(chosen) if chosen else Path(env.get("STEPSDK_BACKUP_DIR") or DEFAULT_BACKUP_DIR)


def resolve_source(args: argparse.Namespace, env: dict[str, str] | None = None) -> Source:
    """Pick the data source from the arguments and the environment (see module doc)."""
    env = os.environ if env is None else env
    backup_dir = backup_dir_from(args, env)
    if getattr(args, "local", False) or getattr(args, "backup_dir", None):
        return Source("backup", backup_dir)
    env_url, env_key = supabase_env(env)
    url = (env_url or "").strip()
    if not url:
        return Source("backup", backup_dir)
    key = (env_key or "").strip()
    if not key:
        raise CliError(
            "SUPABASE_URL is set but no key: set SUPABASE_SECRET_KEY (or SUPABASE_SERVICE_ROLE_KEY), "
            "or use --local for the local backup",
            Exit.CONFIG,
        )
    if not url.startswith(("http://", "https://")):
        raise CliError(f"SUPABASE_URL must start with http:// or https://, got {url!r}", Exit.CONFIG)
    return Source("supabase", backup_dir, url.rstrip("/"), key)


def resolve_config(backup_dir: Path, **options: Any) -> Config:
    """The SDK's configuration for this backup folder; a rejected value is a configuration error."""
    try:
        return Config.resolve(backup_dir=backup_dir, **options)
    except (TypeError, ValueError) as exc:
        raise CliError(f"bad configuration: {exc}", Exit.CONFIG) from None


def supabase_configured(env: dict[str, str] | None = None) -> bool:
    return bool((supabase_env(env)[0] or "").strip())


def check_backup_dir(path: Path, *, must_exist: bool) -> None:
    """Clear errors for a backup folder that is a file, unreadable, or (if required) missing."""
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except PermissionError:  # a parent folder may not be entered
        raise CliError(f"backup folder {path} is not readable (permission denied)", Exit.NO_INPUT) from None
    if not exists:
        if must_exist:
            raise CliError(f"backup folder {path} does not exist", Exit.NO_INPUT)
        return
    if not is_dir:
        raise CliError(f"backup folder {path} is not a folder", Exit.NO_INPUT)
    if not os.access(path, os.R_OK | os.X_OK):
        raise CliError(f"backup folder {path} is not readable", Exit.NO_INPUT)


def open_supabase(source: Source) -> Any:
    """The official client with the service-role key; short timeouts, no 7 s GET retry loop."""
    from stepsdk.backend.client import make_client
    from supabase import SupabaseException

    if not (source.url and source.key):
        raise CliError("Supabase is not configured (SUPABASE_URL and a key)", Exit.CONFIG)
    try:
        return make_client(source.url, source.key)
    except SupabaseException as exc:
        raise CliError(f"cannot use the Supabase configuration: {exc}", Exit.CONFIG) from None


def interactive(args: argparse.Namespace) -> bool:
    """Progress bars and colour only for a person at a terminal (not for --json or pipes)."""
    return not getattr(args, "json", False) and sys.stdout.isatty() and sys.stderr.isatty()


@contextlib.contextmanager
def progress(
    args: argparse.Namespace, description: str, total: int | None
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``. Silent when not interactive."""
    if not interactive(args):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def emit(
    args: argparse.Namespace, result: dict[str, Any], human: str, *, human_to_stderr: bool = False
) -> None:
    """The command's result on stdout: JSON with --json, else the human report (warnings and
    errors go to stderr; so does the report of a command whose stdout carries data: export)."""
    if getattr(args, "json", False):
        text = json.dumps(result, ensure_ascii=False, default=str)
        if not _encodable(text, sys.stdout):  # a lone surrogate from a journal: escaped JSON
            text = json.dumps(result, default=str)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    elif human:
        stream = sys.stderr if human_to_stderr else sys.stdout
        text = human.rstrip("\n") + "\n"
        if not _encodable(text, stream):
            encoding = getattr(stream, "encoding", None) or "utf-8"
            text = text.encode(encoding, "backslashreplace").decode(encoding)
        stream.write(text)
        stream.flush()


def _encodable(text: str, stream: Any) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except UnicodeEncodeError:
        return False
    return True


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


def _describe_backend_error(exc: BaseException) -> tuple[str, Exit] | None:
    """Map backend exceptions to (message, status); None when it is not one of ours."""
    from postgrest.exceptions import APIError
    from storage3.exceptions import StorageApiError, StorageException

    from stepsdk.backend.retry import key_rejected

    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return f"cannot reach the backend: {_short(exc)}", Exit.UNAVAILABLE
    if isinstance(exc, httpx.TransportError):
        return f"network error talking to the backend: {_short(exc)}", Exit.UNAVAILABLE
    if isinstance(exc, APIError):
        if key_rejected(exc):
            return f"Supabase rejected the key: {exc.message}", Exit.CONFIG
        return f"Supabase error {exc.code}: {exc.message}", Exit.FAILED
    if isinstance(exc, StorageApiError):
        return f"Supabase Storage error {exc.status}: {exc.message}", Exit.FAILED
    if isinstance(exc, StorageException):
        return f"Supabase Storage error: {_short(exc)}", Exit.FAILED
    return None


def _describe_os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or _short(exc)}"


describe_backend_error = _describe_backend_error  # for commands that report rather than fail


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def run_safely(
    command: str,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Decorate a command's ``func`` so failures become one line on stderr and an exit status."""

    def decorate(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(func)
        def wrapper(args: argparse.Namespace) -> int:
            try:
                return int(func(args))
            except BrokenPipeError:  # `stepsdk export | head`: the reader has all it wanted
                _silence_stdout()
                return Exit.FAILED
            except StepSDKError as exc:
                status, message = exit_status(exc), str(exc)
            except KeyboardInterrupt:
                status, message = Exit.INTERRUPTED, "interrupted"
            except Exception as exc:  # one line for the user; the traceback only with -v
                described = _describe_backend_error(exc)
                if described is None and isinstance(exc, OSError):
                    described = _describe_os_error(exc), Exit.IO
                if described is None:
                    log.debug("internal error", exc_info=True)
                    described = (
                        f"internal error ({type(exc).__name__}: {_short(exc)}); run with -v",
                        Exit.INTERNAL,
                    )
                message, status = described
            sys.stderr.write(f"stepsdk {command}: error: {message}\n")
            if getattr(args, "json", False):
                sys.stdout.write(json.dumps({"ok": False, "error": message, "status": int(status)}) + "\n")
            return int(status)

        return wrapper

    return decorate


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def examples_formatter() -> type[argparse.HelpFormatter]:
    """Keeps the epilog's examples as written."""
    return argparse.RawDescriptionHelpFormatter
