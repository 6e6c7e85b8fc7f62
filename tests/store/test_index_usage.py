"""Token usage, failed steps, a step's screenshot and the alert measures answered from the backup
index (usage sums kept by triggers, failed steps through their indexes) equal
``stepsdk.ops.stats`` over every journal merged in memory (``BackupStore.read()``: the SQL
views' and functions' definitions in Python), as steps get new versions, tasks arrive after
their steps, journals are rewritten and local retention prunes tasks."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from stepsdk.ops import stats as _ops_stats
from stepsdk.ops.alerts import LocalMeasures, upload_backlog
from stepsdk.ops.retention import BackupRetention
from stepsdk.schema import parse_timestamp
from stepsdk.store.backup import T_SHOTS, T_STEPS, T_TASKS, BackupStore, JournalWriter, ack_record
from stepsdk.viewer.data.backup_source import BackupSource
from stepsdk.viewer.data.base import FAILED_STEP_COLUMNS

Row = dict[str, Any]
TYPES = ["action", "thinking", None]
MESSAGES = ["boom", "  boom \n", "", "   ", "x" * 250 + " tail", None, "Not Found"]
PLUS_TWO = timezone(timedelta(hours=2))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _usage(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            None,
            {
                "prompt_tokens": rng.randint(0, 5000),
                "completion_tokens": rng.randint(0, 900),
                "total_tokens": 7,
            },
            {"prompt_tokens": rng.randint(1, 50)},  # counters missing: 0
            {"prompt_tokens": 1.5, "completion_tokens": True, "total_tokens": "12"},  # not integers: 0
            {},
        ]
    )


def _step(rng: random.Random, task_id: str, n: int, now: datetime, version: int) -> Row:
    created = now - timedelta(days=rng.randint(0, 9), seconds=rng.randint(0, 86399), microseconds=n)
    row: Row = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task_id}/{n}")),
        "task_id": task_id,
        "step_number": n,
        "step_type": rng.choice(TYPES),
        "name": rng.choice(["Tap", "Swipe", None]),
        "duration_ms": rng.choice([None, 0.0, float(rng.randint(0, 5000)), rng.random() * 1e4]),
        "error_type": rng.choice(["TimeoutError", "ValueError", None]),
        "error_message": rng.choice(MESSAGES),
        "error_category": rng.choice(["timeout", "device", None]),
        "usage": _usage(rng),
        "screenshot_path": rng.choice([None, None, "", f"aa/{n:064d}.webp"]),
        "created_at": (
            None
            if rng.random() < 0.05
            else (created.astimezone(PLUS_TWO) if rng.random() < 0.3 else created).isoformat()
        ),
    }
    success = rng.random()
    if success < 0.4:
        row["success"] = False
    elif success < 0.9:
        row["success"] = True
    # else: no success key (a true step)
    return {"k": "step", "v": version, "row": row}


def _task(rng: random.Random, task_id: str, now: datetime, version: int, old: bool = False) -> Row:
    started = now - (timedelta(days=90) if old else timedelta(hours=rng.randint(1, 80)))
    status = rng.choice(["success", "failed", "running", "interrupted"])
    # a running task with a finished time too (stale or reopened): it is not counted as finished
    finished = None if rng.random() < 0.2 else started + timedelta(minutes=rng.randint(1, 90))
    return {
        "k": "task",
        "v": version,
        "row": {
            "task_id": task_id,
            "title": f"title of {task_id}",
            "agent": rng.choice(["a", "b", None]),
            "status": status,
            "started_at": started.isoformat(),
            "finished_at": finished.isoformat() if finished else None,
            "metadata": rng.choice([{}, {"model": "m1"}, {"model": 7}, {"model": None}]),
        },
    }


def random_rounds(rng: random.Random, now: datetime, n_tasks: int) -> list[list[list[Row]]]:
    """Rounds of journals (each a list of batches): first versions, some steps before their task
    or without one; then new versions of steps (usage, day, outcome, category change), tasks
    changing status or finishing, and the task rows that were missing."""
    first: list[list[Row]] = []
    later: list[list[Row]] = []
    instants: list[str | None] = []
    for t in range(n_tasks):
        task_id = f"t{t:03d}"
        steps = [_step(rng, task_id, n, now, 1) for n in range(rng.randint(0, 12))]
        for step in steps:
            if instants and rng.random() < 0.3:  # at the same instant as another: ties broken by step id
                step["row"]["created_at"] = rng.choice(instants)
            instants.append(step["row"]["created_at"])
        shots = [
            {
                "k": "shot",
                "v": 1,
                "row": {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task_id}/shot/{i}")),
                    "task_id": task_id,
                    "step_id": s["row"]["id"],
                    "screenshot_path": f"bb/{t:03d}{i:061d}.webp",
                    "created_at": (now - timedelta(minutes=rng.randint(0, 10_000), seconds=i)).isoformat(),
                },
            }
            for i, s in enumerate(steps * 2)
            if rng.random() < 0.3
        ]
        task = _task(rng, task_id, now, 1, old=t % 10 == 9)
        if t % 7 == 3:  # the task row comes later
            first.append(steps + shots)
            later.append([task])
        elif t % 11 == 5:  # never a task row: its steps count nowhere
            first.append(steps)
        else:
            first.append([task, *steps, *shots])
        if steps and rng.random() < 0.5:
            later.append(
                [
                    _step(rng, task_id, s["row"]["step_number"], now, 2)
                    for s in rng.sample(steps, 2 if len(steps) > 1 else 1)
                ]
            )
        if rng.random() < 0.3:
            later.append([_task(rng, task_id, now, 3, old=t % 10 == 9)])
    half = len(first) // 2
    return [[first[:half]], [first[half:]], [later[: len(later) // 2], later[len(later) // 2 :]]]


def _write(root: Path, batches: list[list[Row]]) -> None:
    writer = JournalWriter(root)
    for batch in batches:
        if batch:
            writer.append(batch)
    writer.close()


# -- the definitions, over the merged snapshot (what the viewer and alerts computed before) ----


def _known_steps(snap: Any) -> list[Row]:
    return [s for tid, rows in snap.steps.items() if tid in snap.tasks for s in rows]


def _failed_steps(snap: Any, category: str | None, limit: int) -> list[Row]:
    wanted = None if category == "none" else category
    rows = [
        s
        for s in _known_steps(snap)
        if s.get("success") is False and (category is None or s.get("error_category") == wanted)
    ]
    rows.sort(key=lambda s: str(s.get("id")))
    rows.sort(key=lambda s: parse_timestamp(s.get("created_at")) or EPOCH, reverse=True)
    return [
        {**{k: s.get(k) for k in FAILED_STEP_COLUMNS}, "task_title": snap.tasks[s["task_id"]].get("title")}
        for s in rows[:limit]
    ]


def _screenshot_path(snap: Any, step_id: str) -> str | None:
    for task_id, steps in snap.steps.items():
        for step in steps:
            if step["id"] == step_id:
                if step.get("screenshot_path"):
                    return str(step["screenshot_path"])
                shots = [r for r in snap.screenshots.get(task_id, []) if r.get("step_id") == step_id]
                shots.sort(key=lambda r: parse_timestamp(r["created_at"]))  # the newest (as Supabase)
                return str(shots[-1]["screenshot_path"]) if shots else None
    return None


def _backlog(snap: Any, now: datetime) -> Row:
    stamps = [parse_timestamp(r.get("created_at")) for r in snap.pending_steps()]
    stamps += [parse_timestamp(r.get("created_at")) for r in snap.pending_screenshots()]
    stamps += [parse_timestamp(r.get("started_at")) for r in snap.pending_tasks()]
    known = [t for t in stamps if t is not None]
    oldest = min(known) if known else None
    return {
        "pending": len(stamps),
        "oldest_at": oldest.isoformat() if oldest else None,
        "oldest_age_s": (now - oldest).total_seconds() if oldest else None,
    }


def assert_agree(root: Path, source: BackupSource, now: datetime) -> None:
    snap = BackupStore(root).read()
    assert upload_backlog(root, now) == _backlog(snap, now)
    steps = _known_steps(snap)
    usage = [_ops_stats.task_usage(t, snap.steps.get(tid, [])) for tid, t in snap.tasks.items()]
    usage = sorted(
        (r for r in usage if r["steps_with_usage"] > 0), key=lambda r: (-r["total_tokens"], r["task_id"])
    )
    assert usage, "the data set has usage"
    for limit in (1, 5, 1000):
        assert source.tasks_by_usage(limit) == usage[:limit]
    every_task = {s["task_id"] for rows in snap.steps.values() for s in rows} | set(snap.tasks)
    for task_id in sorted(every_task):
        task = snap.tasks.get(task_id)
        expected = _ops_stats.task_usage(task, snap.steps.get(task_id, [])) if task else None
        assert source.task_usage(task_id) == expected, task_id
    for days in (1, 3, 12):
        assert source.daily_usage(days) == _ops_stats.daily_usage(steps, days)
    for category in (None, "timeout", "none", "auth"):
        for limit in (3, 1000):
            assert source.failed_steps(category, limit) == _failed_steps(snap, category, limit)
    step_ids = [s["id"] for rows in snap.steps.values() for s in rows]
    assert any(_screenshot_path(snap, i) for i in step_ids)
    for step_id in [*step_ids, str(uuid.uuid4())]:
        assert source.step_screenshot_path(step_id) == _screenshot_path(snap, step_id), step_id
    # the alert measures (stepsdk alerts check against the folder)
    measures = LocalMeasures(root, now)
    tasks = list(snap.tasks.values())
    for window in (3600, 86400, 5 * 86400, 30 * 86400):
        for agent in (None, "a", "nobody"):
            assert measures.failure_rate(window, agent) == _ops_stats.failure_rate(tasks, window, agent, now)
        for step_type, name in (
            (None, None),
            ("action", None),
            (None, "Tap"),
            ("thinking", "Swipe"),
            ("x", None),
        ):
            assert measures.step_p95(window, step_type, name) == _ops_stats.step_p95(
                steps, window, step_type, name, now
            ), (window, step_type, name)
        expected = _ops_stats.error_counts(steps, window, now)
        # ties (same count, same newest time) in the order of type and message (the SQL leaves it open)
        expected.sort(
            key=lambda r: (
                r["error_type"] is not None,
                r["error_type"] or "",
                r["error_message"] is not None,
                r["error_message"] or "",
            )
        )
        expected.sort(key=lambda r: (-r["occurrences"], -parse_timestamp(r["last_seen"]).timestamp()))
        assert measures.error_counts(window) == expected, window
    assert any(measures.error_counts(30 * 86400)) and measures.failure_rate(30 * 86400, None)["failed_tasks"]


def test_usage_failed_steps_and_alert_measures_equal_the_merged_definitions(tmp_path: Path) -> None:
    rng = random.Random(14)
    root = tmp_path / "backup"
    now = datetime.now(UTC)
    source = BackupSource(root)
    # the same error at the same instant in two tasks: the example is the smaller step id's task
    tied = [_task(rng, "tie-a", now, 1), _task(rng, "tie-b", now, 1)]
    for task in tied:
        step = _step(rng, task["row"]["task_id"], 1, now, 1)
        step["row"].update(
            success=False,
            error_type="TiedError",
            error_message="tied",
            created_at=(now - timedelta(seconds=61)).isoformat(),
        )
        _write(root, [[task, step]])
    for rounds in random_rounds(rng, now, 90):
        for journal in rounds:  # several refreshes: the sums follow every change, also of rows counted before
            _write(root, journal)
            assert_agree(root, source, now)
    # uploads confirmed: some rows at an older version; then every task (the oldest pending row is
    # a step's or a screenshot's), then every step (a screenshot's)
    snap = BackupStore(root).read()
    steps = sorted((s for rows in snap.steps.values() for s in rows), key=lambda s: s.get("created_at") or "")
    shots = [r for rows in snap.screenshots.values() for r in rows]
    for acks in (
        [
            ack_record(T_STEPS, {s["id"]: rng.choice([0, 1, 2]) for s in steps[: len(steps) // 3]}),
            ack_record(T_SHOTS, {r["id"]: rng.choice([0, 1]) for r in shots[: len(shots) // 3]}),
            ack_record(T_TASKS, {t: rng.choice([1, 3]) for t in sorted(snap.tasks)[::2]}),
        ],
        [ack_record(T_TASKS, dict(snap.task_versions))],
        [ack_record(T_STEPS, dict(snap.step_versions))],
    ):
        _write(root, [acks])
        assert_agree(root, source, now)
    # a journal rewritten behind the index's back: it starts over, sums too
    journal = sorted((root / "journal").iterdir())[0]
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[: len(lines) // 2]))
    assert_agree(root, source, now)
    # local retention prunes the old tasks' rows from the index (its triggers take their usage out)
    before = {r["task_id"] for r in source.tasks_by_usage(1000)}
    report = BackupRetention(root).run(timedelta(days=30), dry_run=False)
    assert report.task_ids and before & set(report.task_ids)
    assert_agree(root, source, now)
    assert not {r["task_id"] for r in source.tasks_by_usage(1000)} & set(report.task_ids)


def test_missing_folder_has_no_measures_and_is_not_created(tmp_path: Path) -> None:
    measures = LocalMeasures(tmp_path / "nothing")
    assert measures.failure_rate(3600, None) == {"finished_tasks": 0, "failed_tasks": 0, "failure_rate": None}
    assert measures.step_p95(3600, None, None) == {"steps": 0, "p95_duration_ms": None}
    assert measures.error_counts(3600) == []
    assert not (tmp_path / "nothing").exists()
