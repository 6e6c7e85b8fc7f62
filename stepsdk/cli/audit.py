"""``stepsdk audit``: list the audit log (deletions, cleanups, imports, exports, decryptions)."""

from __future__ import annotations

import argparse
from typing import Any

from stepsdk.cli._common import (
    Exit,
    add_source_arguments,
    check_backup_dir,
    emit,
    examples_formatter,
    open_supabase,
    resolve_source,
    run_safely,
)
from stepsdk.ops import audit as _audit

EPILOG = """\
examples:
  stepsdk audit                      # the newest 50 entries (Supabase when configured)
  stepsdk audit --local --limit 500  # the local backup folder's audit.log
  stepsdk audit --action decrypt --json

Each entry: when (UTC), who (the Supabase key's role, or os:<user>), what (delete, cleanup,
import, export, decrypt), the target (task ids, file, folder) and how many.
exit status: 0 listed (possibly nothing); 66 bad backup folder; 69 Supabase unreachable;
78 Supabase not configured, the key rejected or the audit_log table missing.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="list who deleted, cleaned up, imported, exported or decrypted what",
        description="List the audit log of the Supabase project (table audit_log) or of the local backup.",
        epilog=EPILOG,
        formatter_class=examples_formatter(),
    )
    parser.add_argument("--limit", type=_limit, default=50, metavar="N", help="newest N entries (default 50)")
    parser.add_argument("--action", choices=_audit.ACTIONS, help="only this kind of entry")
    add_source_arguments(parser)
    parser.set_defaults(func=run_audit)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"invalid limit {text!r}: use a whole number from 1 to 100000")
    return value


@run_safely("audit")
def run_audit(args: argparse.Namespace) -> int:
    source = resolve_source(args)
    if source.kind == "supabase":
        entries = _audit.read_remote(open_supabase(source), args.limit, args.action)
    else:
        check_backup_dir(source.backup_dir, must_exist=False)
        local = [e for e in _audit.read_local(source.backup_dir) if args.action in (None, e.action)]
        entries = local[-args.limit :]
    rows = [e.to_row() for e in entries]
    lines = [f"{e.at}  {e.actor:<20} {e.action:<8} {e.count:>6}  {e.target or ''}" for e in entries]
    human = "\n".join(lines) if lines else f"no audit entries in the {source.label}"
    emit(args, {"source": source.label, "entries": rows}, human)
    return Exit.OK
