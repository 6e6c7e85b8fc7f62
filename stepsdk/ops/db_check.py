"""Does a Supabase project have what stepsdk needs? Answered through the REST APIs with the service key.

No database URL needed: every check is a request the SDK or the viewer itself makes (a table
or view read with every column it uses, a function call with harmless arguments, the bucket),
plus ``stepsdk_schema_status()`` for what PostgREST cannot show (RLS, policies, migration history).
Each check is independent: one missing object does not hide the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from stepsdk.ops.migrations import migrations
from stepsdk.schema import BUCKET
from stepsdk.store.export_format import SCREENSHOT_COLUMNS, STEP_COLUMNS, TASK_COLUMNS

TABLES = {"tasks": TASK_COLUMNS, "task_steps": STEP_COLUMNS, "step_screenshots": SCREENSHOT_COLUMNS}
VIEWS = ("task_summary", "daily_summary", "error_summary", "step_type_breakdown")
# function → arguments that read nothing or almost nothing (retention: a dry run matching no task)
FUNCTIONS: dict[str, dict[str, Any]] = {
    "stepsdk_task_stats": {"p_task_id": "stepsdk-db-check"},
    "stepsdk_task_step_types": {"p_task_id": "stepsdk-db-check"},
    "stepsdk_daily_stats": {"days": 1},
    "stepsdk_slowest_steps": {"limit_n": 1},
    "stepsdk_delete_tasks_older_than": {"max_age": "100 years", "dry_run": True, "batch_limit": 1},
}
POLICIES = (  # (schema, table, name): the row-level security the core migration creates
    ("public", "tasks", "owners read their tasks"),
    ("public", "task_steps", "owners read steps of their tasks"),
    ("public", "step_screenshots", "owners read screenshots of their tasks"),
    ("storage", "objects", "owners read screenshots objects"),
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _describe(exc: Exception) -> str:
    """A short reason; never a key (the client's exceptions carry none)."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    text = f"{code}: {message}" if code else str(message)
    return " ".join(text.split())[:300]


def _probe(name: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn())
    except httpx.TransportError:
        raise  # unreachable: no point in checking the rest
    except Exception as exc:
        return Check(name, False, _describe(exc))


def run_checks(client: Any) -> list[Check]:
    """Every check against the project behind ``client`` (service key). Raises on a network failure."""
    checks: list[Check] = []
    for table, columns in TABLES.items():

        def read(table: str = table, columns: tuple[str, ...] = columns) -> str:
            client.table(table).select(",".join(columns)).limit(1).execute()
            return f"{len(columns)} columns"

        checks.append(_probe(f"table {table}", read))
    for view in VIEWS:
        checks.append(
            _probe(
                f"view {view}",
                lambda view=view: (client.table(view).select("*").limit(1).execute(), "readable")[1],
            )
        )
    for fn, params in FUNCTIONS.items():
        checks.append(
            _probe(
                f"function {fn}",
                lambda fn=fn, params=params: (client.rpc(fn, params).execute(), "callable")[1],
            )
        )
    checks.append(_probe(f"bucket {BUCKET}", lambda: _bucket(client)))
    checks.extend(_status_checks(client))
    return checks


def _bucket(client: Any) -> str:
    bucket = client.storage.get_bucket(BUCKET)
    if bucket.public:
        raise ValueError("the bucket is public: screenshots would be readable by anyone with the URL")
    return "private"


def _status_checks(client: Any) -> list[Check]:
    try:
        status = client.rpc("stepsdk_schema_status", {}).execute().data
    except httpx.TransportError:
        raise
    except Exception as exc:
        return [
            Check(
                "row-level security and policies",
                False,
                f"cannot be read ({_describe(exc)}): apply the migrations with `stepsdk db push`",
            )
        ]
    rls = status.get("rls") or {}
    no_rls = [t for t in TABLES if not rls.get(t)]
    present = {(p["schema"], p["table"], p["name"]) for p in status.get("policies") or []}
    missing = [f"{s}.{t}: {n!r}" for s, t, n in POLICIES if (s, t, n) not in present]
    checks = [
        Check(
            "row-level security",
            not no_rls,
            "enabled on " + ", ".join(TABLES) if not no_rls else "not enabled on " + ", ".join(no_rls),
        ),
        Check(
            "policies",
            not missing,
            f"{len(POLICIES)} present" if not missing else "missing " + "; ".join(missing),
        ),
    ]
    history = status.get("migrations")
    shipped = migrations()
    if history is None:
        checks.append(
            Check(
                "migration history",
                True,
                "no supabase_migrations history (schema applied by hand); objects checked above",
            )
        )
    else:
        pending = [m.filename for m in shipped if m.version not in set(history)]
        checks.append(
            Check(
                "migration history",
                not pending,
                f"{len(shipped)} of {len(shipped)} applied"
                if not pending
                else "pending: " + ", ".join(pending) + " (run `stepsdk db push`)",
            )
        )
    return checks


def as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
