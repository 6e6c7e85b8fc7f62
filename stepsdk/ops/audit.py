"""The audit log: who deleted, cleaned up, imported, exported or decrypted what, when, how many.

Entries go to the store the action touched: the ``public.audit_log`` table in Supabase
(service role only: row level security with no policy, nothing granted to users; migration
``20261130001500_stepsdk_sensitive_audit.sql``) and/or ``audit.log`` in the backup folder (JSON
lines, file 0600). ``stepsdk audit`` lists them.

Who: the role of the Supabase key used (``service_role``, ``secret_key``...), else the OS user
(``os:<name>``); the OS user and host are kept with every entry. Recording never fails the action
it describes: a problem is logged as a warning (e.g. the migration not applied yet).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("stepsdk.audit")

ACTIONS = ("delete", "cleanup", "import", "export", "decrypt")
AUDIT_FILE = "audit.log"
TABLE = "audit_log"


def os_user() -> str:
    try:
        import getpass  # here, not at import: `stepsdk <command>` must start even where it cannot load

        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid says who
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def key_role(key: str | None) -> str | None:
    """The role a Supabase key acts as: a legacy JWT's ``role`` claim, or the kind of a new-style
    key (``sb_secret_`` → ``secret_key``). Never the key itself."""
    if not key:
        return None
    if key.startswith("sb_secret_"):
        return "secret_key"
    if key.startswith("sb_publishable_"):
        return "publishable_key"
    parts = key.split(".")
    if len(parts) == 3:
        with contextlib.suppress(ValueError, TypeError):
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            role = claims.get("role") if isinstance(claims, dict) else None
            if isinstance(role, str) and role.replace("_", "").isalnum() and len(role) <= 50:
                return role
    return "api_key"


def actor(key: str | None = None) -> str:
    return key_role(key) or f"os:{os_user()}"


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    at: str
    actor: str
    action: str
    target: str | None
    count: int
    host: str | None
    detail: dict[str, Any]

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def entry(
    action: str,
    target: str | None,
    count: int,
    detail: Mapping[str, Any] | None = None,
    key: str | None = None,
) -> Entry:
    if action not in ACTIONS:
        raise ValueError(f"audit action must be one of {ACTIONS}, got {action!r}")
    return Entry(
        at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        actor=actor(key),
        action=action,
        target=None if target is None else str(target)[:2000],
        count=max(0, int(count)),
        host=socket.gethostname()[:255],
        detail={"os_user": os_user(), **dict(detail or {})},
    )


def record(
    action: str,
    target: str | None,
    count: int,
    detail: Mapping[str, Any] | None = None,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
    client: Any = None,
    key: str | None = None,
) -> Entry:
    """Write one entry to the local log (``backup_dir``) and/or the Supabase table (``client``,
    a supabase client with the service-role key ``key``). Never raises for a storage problem."""
    item = entry(action, target, count, detail, key)
    if backup_dir is not None:
        try:
            append_local(Path(backup_dir), item)
        except OSError as exc:
            log.warning("stepsdk: could not write the audit log in %s: %s", backup_dir, exc.strerror or exc)
    if client is not None:
        try:
            from postgrest import ReturnMethod

            client.table(TABLE).insert(item.to_row(), returning=ReturnMethod.minimal).execute()
        except Exception as exc:  # the action happened; a missing table must not hide that
            log.warning(
                "stepsdk: could not write the audit log to Supabase (%s: %s); apply the "
                "migration 20261130001500_stepsdk_sensitive_audit.sql",
                type(exc).__name__,
                str(exc)[:200],
            )
    return item


def record_for(
    source: Any,
    action: str,
    target: str | None,
    count: int,
    detail: Mapping[str, Any] | None = None,
    client: Any = None,
) -> Entry:
    """Record against a CLI source (``stepsdk.cli._common.Source``): its Supabase table, or its
    backup folder's log."""
    if source.kind == "supabase":
        if client is None:
            from stepsdk.cli._common import open_supabase

            client = open_supabase(source)
        return record(action, target, count, detail, client=client, key=source.key)
    return record(action, target, count, detail, backup_dir=source.backup_dir)


def append_local(root: Path, item: Entry) -> None:
    from stepsdk.store.backup import open_private_append, private_dir

    private_dir(root)
    line = json.dumps(item.to_row(), ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    with open_private_append(root / AUDIT_FILE) as fh:
        fh.write(line)


def read_local(root: str | os.PathLike[str]) -> Iterator[Entry]:
    """Entries of the local log, oldest first (damaged lines are skipped)."""
    path = Path(root) / AUDIT_FILE
    if not path.is_file():
        return
    fields = {f.name for f in dataclasses.fields(Entry)}
    with path.open("rb") as fh:
        for line in fh:
            with contextlib.suppress(ValueError, TypeError):
                row = json.loads(line)
                if isinstance(row, dict) and set(row) == fields:
                    yield Entry(**row)


def read_remote(client: Any, limit: int, action: str | None = None) -> list[Entry]:
    """The newest ``limit`` entries of the Supabase table, oldest first."""
    query = (
        client.table(TABLE)
        .select("at,actor,action,target,count,host,detail")
        .order("at", desc=True)
        .limit(limit)
    )
    if action:
        query = query.eq("action", action)
    rows = query.execute().data or []
    return [Entry(**row) for row in reversed(rows)]


__all__ = ["ACTIONS", "AUDIT_FILE", "Entry", "actor", "key_role", "read_local", "read_remote", "record"]
