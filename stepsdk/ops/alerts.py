"""Alert rules over recorded runs: parse the rules (TOML), measure, keep episodes.

A rule file (``stepsdk-alerts.toml``, or ``$STEPSDK_ALERTS``)::

    [settings]
    state_file = "stepsdk-alerts.state.json"   # episodes; relative to this file (this is the default)

    [[webhook]]                                # any number; also $STEPSDK_ALERT_WEBHOOK (generic JSON)
    url = "https://hooks.slack.com/services/..."
    format = "slack"                           # json (default), slack or feishu

    [[rule]]
    name = "checkout failing"
    kind = "failure_rate"                      # failed / finished tasks of the window
    window = "1h"
    above = 0.2
    min_tasks = 5                              # optional (default 1)
    agent = "checkout-bot"                     # optional

    [[rule]]
    name = "slow taps"
    kind = "step_p95"                          # p95 duration of the window's steps
    window = "30m"
    above_ms = 3000
    step_type = "action"                       # optional
    step_name = "Tap"                          # optional: the step's `name`
    min_steps = 10                             # optional (default 1)

    [[rule]]
    name = "same error again and again"
    kind = "error_repeats"                     # one alert per error (type + normalized message)
    window = "1h"
    more_than = 5
    error_type = "TimeoutError"                # optional
    message_contains = "not found"             # optional, case-insensitive

    [[rule]]
    name = "uploads stuck"
    kind = "upload_backlog"                    # the oldest item of the backup not yet uploaded
    older_than = "15m"
    backup_dir = "/data/backup"                # optional: default $STEPSDK_BACKUP_DIR or ./backup

An alert is one rule (one error group for ``error_repeats``) whose condition holds. It fires
once when its episode starts, stays quiet while the condition holds, and resolves (one more
notification) when the condition clears; the episodes live in the small state file between
runs. The state file is also what the viewer reads to show the active alerts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from stepsdk.errors import ConfigurationError
from stepsdk.ops.retention import parse_duration

log = logging.getLogger("stepsdk.alerts")

ENV_RULES = "STEPSDK_ALERTS"
ENV_STATE = "STEPSDK_ALERTS_STATE"
ENV_WEBHOOK = "STEPSDK_ALERT_WEBHOOK"
DEFAULT_RULES = "stepsdk-alerts.toml"
KINDS = ("failure_rate", "step_p95", "error_repeats", "upload_backlog")
WEBHOOK_FORMATS = ("json", "slack", "feishu")
STATE_VERSION = 1
_ALLOWED = {
    "failure_rate": {"window", "above", "min_tasks", "agent"},
    "step_p95": {"window", "above_ms", "step_type", "step_name", "min_steps"},
    "error_repeats": {"window", "more_than", "error_type", "message_contains"},
    "upload_backlog": {"older_than", "backup_dir"},
}
_REQUIRED = {
    "failure_rate": {"window", "above"},
    "step_p95": {"window", "above_ms"},
    "error_repeats": {"window", "more_than"},
    "upload_backlog": {"older_than"},
}


class RulesError(ConfigurationError):
    """The rule file is missing or malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    params: Mapping[str, Any]

    @property
    def window_seconds(self) -> int:
        return int(self.params["window_s"])


@dataclass(frozen=True)
class Webhook:
    url: str = field(repr=False)  # a Slack/Feishu webhook URL is a secret: never in repr or logs
    format: str = "json"

    @property
    def label(self) -> str:
        from urllib.parse import urlsplit

        return f"{self.format} webhook on {urlsplit(self.url).hostname or '?'}"


@dataclass(frozen=True)
class AlertConfig:
    path: Path
    rules: tuple[Rule, ...]
    webhooks: tuple[Webhook, ...]
    state_file: Path


def rules_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(ENV_RULES) or DEFAULT_RULES)


def default_state_file(rules: Path) -> Path:
    return rules.with_name(rules.stem + ".state.json")


def load_config(path: Path, env: Mapping[str, str] | None = None) -> AlertConfig:
    import tomllib  # here: the CLI parser imports this module's command for every command

    env = os.environ if env is None else env
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"alert rules {path}: no such file (give --rules or set {ENV_RULES})") from None
    except OSError as exc:
        raise RulesError(f"alert rules {path}: cannot read it ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"alert rules {path}: not valid TOML ({exc})") from None
    unknown = set(doc) - {"settings", "rule", "webhook"}
    if unknown:
        raise RulesError(
            f"alert rules {path}: unknown top-level keys {sorted(unknown)} (settings, rule, webhook)"
        )
    settings = _table(doc.get("settings", {}), path, "[settings]")
    if set(settings) - {"state_file"}:
        raise RulesError(f"alert rules {path}: [settings] takes state_file only")
    rules = tuple(_rule(entry, path, i) for i, entry in enumerate(_list(doc.get("rule", []), path, "rule")))
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RulesError(f"alert rules {path}: rule names must be unique, repeated: {duplicates}")
    hooks = [
        _webhook(entry, path, i) for i, entry in enumerate(_list(doc.get("webhook", []), path, "webhook"))
    ]
    if env.get(ENV_WEBHOOK):
        hooks.append(_webhook({"url": env[ENV_WEBHOOK]}, path, len(hooks), where=ENV_WEBHOOK))
    state = env.get(ENV_STATE) or settings.get("state_file")
    if state is not None and (not isinstance(state, str) or not state):
        raise RulesError(f"alert rules {path}: state_file must be a path")
    state_file = (path.parent / state) if state else default_state_file(path)
    return AlertConfig(path, rules, tuple(hooks), state_file)


def _table(value: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RulesError(f"alert rules {path}: {where} must be a table")
    return value


def _list(value: Any, path: Path, name: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RulesError(f"alert rules {path}: use [[{name}]] tables for {name}")
    return value


def _rule(entry: dict[str, Any], path: Path, index: int) -> Rule:
    where = f"alert rules {path}: rule #{index + 1}"
    name, kind = entry.get("name"), entry.get("kind")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise RulesError(f"{where}: name must be a string of 1 to 200 characters")
    where = f"alert rules {path}: rule {name!r}"
    if kind not in KINDS:
        raise RulesError(f"{where}: kind must be one of {list(KINDS)}, got {kind!r}")
    keys = set(entry) - {"name", "kind"}
    unknown, missing = keys - _ALLOWED[kind], _REQUIRED[kind] - keys
    if unknown:
        raise RulesError(
            f"{where}: unknown keys {sorted(unknown)} for {kind} (allowed: {sorted(_ALLOWED[kind])})"
        )
    if missing:
        raise RulesError(f"{where}: {kind} needs {sorted(missing)}")
    params: dict[str, Any] = {}
    for key, value in entry.items():
        if key in ("name", "kind"):
            continue
        if key in ("window", "older_than"):
            try:
                seconds = int(parse_duration(value).total_seconds()) if isinstance(value, str) else -1
            except ValueError as exc:
                raise RulesError(f"{where}: {key}: {exc}") from None
            if not 1 <= seconds <= 31_622_400:
                raise RulesError(f"{where}: {key} must be a duration like 30m, 1h, 7d (at most 366 days)")
            params[key + "_s"] = seconds
        elif key in ("above", "above_ms"):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or value < 0
                or (key == "above" and value > 1)
            ):
                raise RulesError(
                    f"{where}: {key} must be a number" + (" in 0..1" if key == "above" else " >= 0")
                )
            params[key] = float(value)
        elif key in ("min_tasks", "min_steps", "more_than"):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (0 if key == "more_than" else 1)
            ):
                raise RulesError(f"{where}: {key} must be an integer >= {0 if key == 'more_than' else 1}")
            params[key] = value
        else:  # agent, step_type, step_name, error_type, message_contains, backup_dir
            if not isinstance(value, str) or not value or len(value) > 1000:
                raise RulesError(f"{where}: {key} must be a non-empty string")
            params[key] = value
    return Rule(name, kind, params)


def _webhook(entry: dict[str, Any], path: Path, index: int, where: str | None = None) -> Webhook:
    where = where or f"alert rules {path}: webhook #{index + 1}"
    if set(entry) - {"url", "format"}:
        raise RulesError(f"{where}: a webhook takes url and format only")
    url, fmt = entry.get("url"), entry.get("format", "json")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise RulesError(f"{where}: url must be an http(s) URL")
    if fmt not in WEBHOOK_FORMATS:
        raise RulesError(f"{where}: format must be one of {list(WEBHOOK_FORMATS)}, got {fmt!r}")
    return Webhook(url, fmt)


# --------------------------------------------------------------------------- measuring


class Measures(Protocol):
    """The measures the rules read, from Supabase (SQL functions) or the local store."""

    label: str

    def failure_rate(self, window_seconds: int, agent: str | None) -> dict[str, Any]: ...

    def step_p95(self, window_seconds: int, step_type: str | None, name: str | None) -> dict[str, Any]: ...

    def error_counts(self, window_seconds: int) -> list[dict[str, Any]]: ...


class SupabaseMeasures:
    """The ``stepsdk_alert_*`` functions of ``20261130001450_stepsdk_usage_alerts.sql``."""

    label = "supabase"

    def __init__(self, client: Any) -> None:
        self.client = client

    def _rpc(self, fn: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.client.rpc(fn, params).execute().data or [])

    def failure_rate(self, window_seconds: int, agent: str | None) -> dict[str, Any]:
        [row] = self._rpc("stepsdk_alert_failure_rate", {"window_seconds": window_seconds, "p_agent": agent})
        rate = row.get("failure_rate")
        return {**row, "failure_rate": float(rate) if rate is not None else None}

    def step_p95(self, window_seconds: int, step_type: str | None, name: str | None) -> dict[str, Any]:
        [row] = self._rpc(
            "stepsdk_alert_step_p95",
            {"window_seconds": window_seconds, "p_step_type": step_type, "p_name": name},
        )
        return row

    def error_counts(self, window_seconds: int) -> list[dict[str, Any]]:
        return self._rpc("stepsdk_alert_error_counts", {"window_seconds": window_seconds})


class LocalMeasures:
    """The same measures over a backup folder, as queries of its index (``stepsdk.store.index``)
    with the definitions of :mod:`stepsdk.ops.stats`: tasks and steps of the backup (a step of a
    task the backup has no row of does not count, as the SQL's foreign key), finished and created
    times compared as instants, percentiles by PostgreSQL's linear interpolation."""

    label = "backup"

    def __init__(self, backup_dir: Path, now: datetime | None = None) -> None:
        from stepsdk.store.index import BackupIndex

        self.folder = Path(backup_dir)
        # no folder: nothing recorded (and nothing created)
        self.index = BackupIndex(self.folder, None if self.folder.is_dir() else ":memory:")
        self.now = now

    def _db(self) -> Any:
        import sqlite3

        from stepsdk.store.index import BackupIndex

        try:
            return self.index.refresh()
        except (sqlite3.OperationalError, OSError) as exc:
            if str(self.index.path) == ":memory:":
                raise
            # a folder where the index cannot be written (read-only media): one in memory instead
            log.warning("alerts: cannot use the index of %s (%s): building one in memory", self.folder, exc)
            self.index = BackupIndex(self.folder, ":memory:")
            return self.index.refresh()

    def _since(self, window_seconds: int) -> float:
        from stepsdk.ops.stats import check_window

        check_window(window_seconds)
        return ((self.now or datetime.now(UTC)) - timedelta(seconds=window_seconds)).timestamp()

    def failure_rate(self, window_seconds: int, agent: str | None) -> dict[str, Any]:
        """``stepsdk_alert_failure_rate``: tasks finished in the window (status not running)."""
        since = self._since(window_seconds)
        agent_sql = " and agent = ?" if agent is not None else ""
        finished, failed = (
            self._db()
            .execute(
                "select count(*), coalesce(sum(status = 'failed'), 0) from summary indexed by summary_finished "
                f"where finished_epoch >= ? and status is not 'running'{agent_sql}",
                [since, *([agent] if agent is not None else [])],
            )
            .fetchone()
        )
        return {
            "finished_tasks": finished,
            "failed_tasks": failed,
            "failure_rate": failed / finished if finished else None,
        }

    def step_p95(self, window_seconds: int, step_type: str | None, name: str | None) -> dict[str, Any]:
        """``stepsdk_alert_step_p95``: p95 of the durations of the steps created in the window.

        Without a name, the window's whole UTC days are read from the per-day duration bucket
        counts (``type_hist``) and only the steps of the bucket the p95 falls in are read (as the
        viewer's period statistics); the window's first, partial day and untyped steps are read
        from the steps. With a name, every step of the window is read (its name is in its record)."""
        from stepsdk.store.index import percentile_cont

        since = self._since(window_seconds)
        conn = self._db()
        if step_type is None:  # one range of the (step_type, created_epoch, ...) index per type
            types: list[str | None] = [r[0] for r in conn.execute("select step_type from step_types")]
            types.append(None)
        else:
            types = [step_type]
        first = datetime.fromtimestamp(since, UTC).date()
        first_day = first.isoformat()
        # the first day's end: steps before it are read one by one, the later days' are counted
        first_end = datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() + 86400
        name_sql = " and json_extract(rec, '$.row.name') = ?" if name is not None else ""
        # whole days from the counts: typed steps of known tasks (what type_hist counts), no name
        whole = name is None
        durations: list[float] = []
        for kind in types:
            counted = whole and kind is not None
            durations += (
                r[0]
                for r in conn.execute(
                    "select duration_ms from steps indexed by steps_type_period where "
                    + ("step_type is null" if kind is None else "step_type = ?")
                    + " and created_epoch >= ? and task_known = 1 and duration_ms is not null"
                    + (" and created_epoch < ?" if counted else "")
                    + name_sql,
                    [
                        *([kind] if kind is not None else []),
                        since,
                        *([first_end] if counted else []),
                        *([name] if name is not None else []),
                    ],
                )
            )
        if not whole:
            return {"steps": len(durations), "p95_duration_ms": percentile_cont(durations, 0.95)}
        return _bucket_p95(conn, [t for t in types if t is not None], first_day, durations)

    def error_counts(self, window_seconds: int) -> list[dict[str, Any]]:
        """``stepsdk_alert_error_counts``: the window's failed steps per error type and message
        (trimmed, first 200 characters, empty: null), most frequent first, then most recent."""
        from stepsdk.schema import parse_timestamp

        since = self._since(window_seconds)
        rows = (
            self._db()
            .execute(
                """
            with e as (
                select s.id, s.task_id, s.created_epoch, s.created_at, s.error_type,
                       substr(nullif(trim(case when json_type(s.rec, '$.row.error_message') = 'text'
                                               then json_extract(s.rec, '$.row.error_message') end,
                                          char(32, 9, 13, 10)), ''), 1, 200) as message
                from steps s indexed by steps_failed
                where s.success = 0 and s.created_epoch >= ? and s.strict_fail = 1 and s.task_known = 1),
            g as (
                select e.*, count(*) over w as n,
                       row_number() over (w order by e.created_epoch desc, e.id) as newest
                from e window w as (partition by e.error_type, e.message))
            select error_type, message, n, created_at, task_id from g where newest = 1
            order by n desc, created_epoch desc, error_type, message""",
                (since,),
            )
            .fetchall()
        )
        return [
            {
                "error_type": error_type,
                "error_message": message,
                "occurrences": n,
                "last_seen": parse_timestamp(created_at).isoformat(),  # type: ignore[union-attr]
                "example_task_id": task_id,
            }
            for error_type, message, n, created_at, task_id in rows
        ]


def _bucket_p95(conn: Any, types: list[str], first_day: str, extra: list[float]) -> dict[str, Any]:
    """``percentile_cont(0.95)`` of the durations of ``types``' steps of the days after
    ``first_day`` (counted per duration bucket in ``type_hist``) and the ``extra`` durations: the
    counts locate the two ranks, and only their buckets' steps are read (buckets are monotonic
    in the duration)."""
    from stepsdk.store.index import duration_bucket

    marks = ",".join("?" * len(types))
    counts: dict[int, int] = {}
    if types:
        for bucket, n in conn.execute(
            f"select bucket, sum(n) from type_hist where step_type in ({marks}) and day > ? group by bucket",
            [*types, first_day],
        ):
            counts[bucket] = int(n)
    extra_by_bucket: dict[int, list[float]] = {}
    for value in extra:
        extra_by_bucket.setdefault(duration_bucket(value), []).append(value)  # type: ignore[arg-type]
    for bucket, values in extra_by_bucket.items():
        counts[bucket] = counts.get(bucket, 0) + len(values)
    total = sum(counts.values())
    if not total:
        return {"steps": 0, "p95_duration_ms": None}
    pos = 0.95 * (total - 1)
    low, high = math.floor(pos), math.ceil(pos)
    found: dict[int, float] = {}
    seen = 0
    for bucket in sorted(counts):
        n = counts[bucket]
        wanted = [r for r in (low, high) if seen <= r < seen + n]
        if wanted:
            values = list(extra_by_bucket.get(bucket, []))
            for kind in types:
                values += (
                    r[0]
                    for r in conn.execute(
                        "select duration_ms from steps indexed by steps_dur where step_type = ? and dbucket = ? "
                        "and duration_ms is not null and task_known = 1 and day > ?",
                        (kind, bucket, first_day),
                    )
                )
            values.sort()
            for r in wanted:
                found[r] = float(values[r - seen])
        seen += n
        if high in found:
            break
    p95 = found[low] if low == high else found[low] + (found[high] - found[low]) * (pos - low)
    return {"steps": total, "p95_duration_ms": p95}


def upload_backlog(
    backup_dir: Path, now: datetime | None = None, measures: LocalMeasures | None = None
) -> dict[str, Any]:
    """Items of the backup not uploaded yet (task, step and screenshot rows not confirmed in their
    newest version) and the age of the oldest (its created/started time), from the folder's
    index (``measures``: the one already opened on it)."""
    from stepsdk.schema import parse_timestamp
    from stepsdk.store.backup import T_SHOTS, T_STEPS, T_TASKS

    conn = (measures or LocalMeasures(backup_dir, now))._db()
    counts = dict(conn.execute("select tbl, n from pending").fetchall())
    pending = sum(int(counts.get(t) or 0) for t in (T_TASKS, T_STEPS, T_SHOTS))
    # the oldest pending row of each table (pending rows only, through partial indexes); screenshot
    # rows keep their time as text only: each pending one is parsed
    step = conn.execute(
        "select created_at from steps indexed by steps_pending_created where v > acked "
        "and created_epoch is not null order by created_epoch limit 1"
    ).fetchall()
    shots = conn.execute(
        "select created_at from shots indexed by shots_pending_paths where v > acked"
    ).fetchall()
    task = conn.execute(
        "select started_at from tasks indexed by tasks_pending_started where v > acked "
        "and started_epoch is not null order by started_epoch limit 1"
    ).fetchall()
    known = [t for t in (parse_timestamp(r[0]) for r in (*step, *shots, *task)) if t is not None]
    now = now or datetime.now(UTC)
    oldest = min(known) if known else None
    return {
        "pending": pending,
        "oldest_at": oldest.isoformat() if oldest else None,
        "oldest_age_s": (now - oldest).total_seconds() if oldest else None,
    }


@dataclass(frozen=True)
class Observation:
    """One alert's condition now: ``key`` names the alert (rule, plus the error group)."""

    key: str
    rule: Rule
    firing: bool
    summary: str
    value: float | None
    threshold: float
    details: dict[str, Any]


def evaluate(
    rule: Rule, measures: Measures | None, backup_dir: Path, now: datetime | None = None
) -> list[Observation]:
    """The rule's observations: one (firing or not) for most kinds; for ``error_repeats`` one
    per error group over the threshold (a group under it is simply absent, i.e. not firing)."""
    p = rule.params
    if rule.kind == "upload_backlog":
        folder = Path(p.get("backup_dir") or backup_dir)
        same = isinstance(measures, LocalMeasures) and measures.folder.resolve() == folder.resolve()
        m = upload_backlog(folder, now, measures if same else None)  # type: ignore[arg-type]
        age = m["oldest_age_s"]
        firing = age is not None and age > p["older_than_s"]
        text = (
            f"{m['pending']} item(s) of {folder} not uploaded, the oldest for {_age(age)}"
            if age is not None
            else f"nothing waiting for upload in {folder}"
        )
        return [
            Observation(
                rule.name, rule, firing, text, age, float(p["older_than_s"]), {**m, "backup_dir": str(folder)}
            )
        ]
    if measures is None:
        raise ValueError("this rule needs a data source")
    window = rule.window_seconds
    if rule.kind == "failure_rate":
        m = measures.failure_rate(window, p.get("agent"))
        rate, finished = m.get("failure_rate"), int(m.get("finished_tasks") or 0)
        firing = rate is not None and finished >= p.get("min_tasks", 1) and rate > p["above"]
        who = f" of {p['agent']}" if p.get("agent") else ""
        text = (
            f"{m.get('failed_tasks')} of {finished} finished task(s){who} failed in the last {_age(window)}"
            f" ({rate * 100:.1f} % > {p['above'] * 100:.1f} %)"
            if rate is not None
            else f"no finished task{who} in the last {_age(window)}"
        )
        return [Observation(rule.name, rule, firing, text, rate, p["above"], {**m, "window_s": window})]
    if rule.kind == "step_p95":
        m = measures.step_p95(window, p.get("step_type"), p.get("step_name"))
        p95, steps = m.get("p95_duration_ms"), int(m.get("steps") or 0)
        firing = p95 is not None and steps >= p.get("min_steps", 1) and float(p95) > p["above_ms"]
        what = " ".join(
            x for x in (p.get("step_type"), repr(p["step_name"]) if p.get("step_name") else None) if x
        )
        text = (
            f"p95 of {steps} {what or 'all'} step(s) in the last {_age(window)}: {float(p95):.0f} ms"
            f" (limit {p['above_ms']:.0f} ms)"
            if p95 is not None
            else f"no {what or ''} step in the last {_age(window)}"
        )
        return [
            Observation(
                rule.name,
                rule,
                firing,
                text,
                None if p95 is None else float(p95),
                p["above_ms"],
                {**m, "window_s": window, "step_type": p.get("step_type"), "step_name": p.get("step_name")},
            )
        ]
    # error_repeats
    out = []
    needle = (p.get("message_contains") or "").casefold()
    for row in measures.error_counts(window):
        if p.get("error_type") and row.get("error_type") != p["error_type"]:
            continue
        if needle and needle not in (row.get("error_message") or "").casefold():
            continue
        count = int(row.get("occurrences") or 0)
        if count > p["more_than"]:
            label = f"{row.get('error_type') or 'error'}: {row.get('error_message') or '(no message)'}"
            out.append(
                Observation(
                    f"{rule.name}::{row.get('error_type')}::{row.get('error_message')}",
                    rule,
                    True,
                    f"{label} — {count} times in the last {_age(window)} (more than {p['more_than']})",
                    float(count),
                    float(p["more_than"]),
                    {**row, "window_s": window},
                )
            )
    return out


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0 or seconds >= 10 * size:
            return f"{seconds // size} {unit}" if seconds % size == 0 else f"{seconds / size:.1f} {unit}"
    return f"{seconds} s"


# --------------------------------------------------------------------------- episodes


@dataclass(frozen=True)
class Event:
    """A notification: an alert started (``firing``) or ended (``resolved``)."""

    status: str
    key: str
    rule: str
    kind: str
    summary: str
    value: float | None
    threshold: float
    since: str
    at: str
    details: dict[str, Any]


def read_state(path: Path) -> dict[str, Any]:
    """The episodes file (``{"version", "checked_at", "active": {key: alert}}``); a missing or
    unreadable file is an empty state (a corrupt one is logged by the caller's command)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": STATE_VERSION, "checked_at": None, "active": {}}
    if not isinstance(doc, dict) or not isinstance(doc.get("active"), dict):
        return {"version": STATE_VERSION, "checked_at": None, "active": {}}
    return doc


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically (temp file + rename), so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, ensure_ascii=False, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class CheckResult:
    fired: list[Event] = field(default_factory=list)
    resolved: list[Event] = field(default_factory=list)
    active: list[dict[str, Any]] = field(default_factory=list)  # every alert firing now (new or not)
    observations: list[Observation] = field(default_factory=list)
    undelivered: list[tuple[Event, str]] = field(default_factory=list)  # (event, why): retried next check
    errors: list[tuple[str, str]] = field(default_factory=list)  # (rule, why): not evaluated this time


Deliver = Callable[[Event], list[str]]  # returns the failures (empty when every target took it)


def check(
    config: AlertConfig,
    measures: Measures | None,
    backup_dir: Path,
    deliver: Deliver,
    now: datetime | None = None,
) -> CheckResult:
    """Evaluate every rule, notify what started and what ended, and save the episodes.

    An event whose delivery failed is not recorded, so the next check notifies it again (at
    least once, never a flood: an episode that was notified stays quiet). A rule that could
    not be evaluated keeps its episodes as they were."""
    now = now or datetime.now(UTC)
    at = now.isoformat()
    state = read_state(config.state_file)
    active: dict[str, Any] = dict(state["active"])
    result = CheckResult()
    failed_rules: set[str] = set()
    for rule in config.rules:
        try:
            observations = evaluate(rule, measures, backup_dir, now)
        except Exception as exc:  # a backend error for one rule must not hide the others
            failed_rules.add(rule.name)
            result.errors.append((rule.name, f"{type(exc).__name__}: {exc}"[:300]))
            continue
        result.observations.extend(observations)
        for obs in observations:
            if not obs.firing:
                continue
            entry = active.get(obs.key)
            if entry is None:
                event = Event(
                    "firing",
                    obs.key,
                    rule.name,
                    rule.kind,
                    obs.summary,
                    obs.value,
                    obs.threshold,
                    at,
                    at,
                    obs.details,
                )
                failures = deliver(event)
                if failures:
                    result.undelivered.extend((event, f) for f in failures)
                    continue
                result.fired.append(event)
                entry = {"rule": rule.name, "kind": rule.kind, "since": at}
            active[obs.key] = {
                **entry,
                "summary": obs.summary,
                "value": obs.value,
                "threshold": obs.threshold,
                "last_seen": at,
            }
    for key, entry in list(active.items()):
        if entry.get("rule") in failed_rules:
            continue
        still = any(o.key == key and o.firing for o in result.observations)
        if still:
            continue
        rule_exists = any(r.name == entry.get("rule") for r in config.rules)
        event = Event(
            "resolved",
            key,
            str(entry.get("rule")),
            str(entry.get("kind")),
            f"resolved: {entry.get('summary')}" if rule_exists else f"rule removed: {entry.get('rule')}",
            entry.get("value"),
            float(entry.get("threshold") or 0),
            str(entry.get("since")),
            at,
            {"last_seen": entry.get("last_seen")},
        )
        failures = deliver(event)
        if failures:
            result.undelivered.extend((event, f) for f in failures)
            continue
        result.resolved.append(event)
        del active[key]
    result.active = [
        {"key": k, **v} for k, v in sorted(active.items(), key=lambda kv: str(kv[1].get("since")))
    ]
    write_state(config.state_file, {"version": STATE_VERSION, "checked_at": at, "active": active})
    return result


def viewer_state_file(env: Mapping[str, str] | None = None) -> Path:
    """Where the viewer looks for the episodes: ``$STEPSDK_ALERTS_STATE``, else the state file of
    the rule file (``$STEPSDK_ALERTS`` or ./stepsdk-alerts.toml), else that file's default."""
    env = os.environ if env is None else env
    if env.get(ENV_STATE):
        return Path(env[ENV_STATE])
    rules = rules_path(env)
    try:
        return load_config(rules, env).state_file
    except RulesError:
        return default_state_file(rules)


def active_alerts(state_file: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """(last check time, the active alerts, oldest first) from the episodes file."""
    state = read_state(state_file)
    active = [{"key": k, **v} for k, v in state["active"].items() if isinstance(v, dict)]
    active.sort(key=lambda a: str(a.get("since")))
    return state.get("checked_at"), active
