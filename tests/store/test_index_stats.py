"""The per-day step counts of the backup index (``type_days``, ``type_hist``, kept by triggers):
the period statistics read from them equal the same statistics computed from every step, as
steps get new versions, tasks arrive after their steps or change agent, and journals are rewritten."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stepsdk.ops.retention import BackupRetention
from stepsdk.store.backup import BackupStore, JournalWriter
from stepsdk.store.index import BackupIndex, duration_bucket, percentile_cont
from stepsdk.viewer.data.backup_source import BackupSource
from stepsdk.viewer.data.base import period_start
from tests.store.test_backup_index import ROOT_DIR, assert_consistent, records

TYPES = ["action", "thinking", "validation", None]


def reference(root: Path, since: datetime | None, agent: str | None) -> list[dict[str, Any]]:
    """The breakdown from merging every journal in memory (the SQL view's definition)."""
    snap = BackupStore(root).read()
    groups: dict[str, list[dict[str, Any]]] = {}
    for task_id, steps in snap.steps.items():
        task = snap.tasks.get(task_id)
        if task is None or (agent and task.get("agent") != agent):
            continue
        for s in steps:
            created = datetime.fromisoformat(s["created_at"]) if s.get("created_at") else None
            if s.get("step_type") is None or (since is not None and (created is None or created < since)):
                continue
            groups.setdefault(s["step_type"], []).append(s)
    out = []
    for step_type in sorted(groups):
        rows = groups[step_type]
        durations = [float(s["duration_ms"]) for s in rows if s.get("duration_ms") is not None]
        out.append(
            {
                "step_type": step_type,
                "steps": len(rows),
                "failed_steps": sum(1 for s in rows if not s.get("success", True)),
                "avg_duration_ms": sum(durations) / len(durations) if durations else None,
                "p95_duration_ms": percentile_cont(durations, 0.95),
            }
        )
    return out


def close(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def norm(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in rows]

    return norm(a) == norm(b)


def random_records(
    rng: random.Random,
    now: datetime,
    n_tasks: int,
) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """Batches of records (steps before or after their task) and batches to write later (second
    versions of steps, tasks moving to another agent)."""
    batches: list[list[dict[str, Any]]] = []
    later: list[list[dict[str, Any]]] = []
    for t in range(n_tasks):
        task_id = f"t{t}"
        task = {
            "k": "task",
            "v": 1,
            "row": {
                "task_id": task_id,
                "title": task_id,
                "agent": rng.choice(["a", "b", None]),
                "status": "success",
                "started_at": now.isoformat(),
                "metadata": {},
            },
        }
        steps = []
        for n in range(rng.randint(0, 30)):
            created = now - timedelta(days=rng.randint(0, 9), seconds=rng.randint(0, 86399))
            duration = rng.choice(
                [None, -5.0, 0.0, float(rng.randint(0, 5000)), rng.random() * 1e5, float(rng.randint(0, 3))]
            )
            steps.append(
                {
                    "k": "step",
                    "v": 1,
                    "row": {
                        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task_id}/{n}")),
                        "task_id": task_id,
                        "step_number": n,
                        "step_type": rng.choice(TYPES),
                        "duration_ms": duration,
                        "success": rng.random() > 0.2,
                        "error_message": "boom",
                        "created_at": None if rng.random() < 0.05 else created.isoformat(),
                    },
                }
            )
        if rng.random() < 0.3:
            batches.append(steps)
            batches.append([task])
        else:
            batches.append([task, *steps])
        if steps and rng.random() < 0.4:  # new versions: other durations, types, outcome
            again = []
            for rec in rng.sample(steps, k=max(1, len(steps) // 3)):
                row = {
                    **rec["row"],
                    "duration_ms": rng.choice([None, float(rng.randint(0, 9000))]),
                    "step_type": rng.choice(TYPES),
                    "success": rng.random() > 0.5,
                }
                again.append({"k": "step", "v": 2, "row": row})
            later.append(again)
        if rng.random() < 0.2:  # the task moves to another agent
            later.append(
                [{"k": "task", "v": 2, "row": {**task["row"], "agent": rng.choice(["a", "b", "c"])}}]
            )
        if rng.random() < 0.2:  # the task is updated after its steps were counted
            later.append([{"k": "task", "v": 3, "row": {**task["row"], "status": "failed"}}])
    return batches, later


def assert_periods_agree(root: Path, source: BackupSource) -> None:
    for days in (None, 1, 3, 14):
        since = period_start(days) if days else None
        for agent in (None, "a", "c"):
            source._cache.clear()
            got = source.step_type_breakdown(since=since, agent=agent)
            assert close(got, reference(root, since, agent)), (days, agent)


def test_period_breakdown_from_day_counts_equals_every_step(tmp_path: Path) -> None:
    rng = random.Random(12)
    root = tmp_path / "backup"
    now = datetime.now(UTC)
    source = BackupSource(root)
    batches, later = random_records(rng, now, 120)
    rounds = [batches[i : i + 40] for i in range(0, len(batches), 40)] + [
        later[: len(later) // 2],
        later[len(later) // 2 :],
    ]
    for round_ in rounds:  # several refreshes: the counts follow each change, also of rows counted before
        writer = JournalWriter(root)
        for batch in round_:
            writer.append(batch)
        writer.close()
        assert_periods_agree(root, source)
    # a journal rewritten (as cleanup --local does): the index starts over, counts too
    journal = sorted((root / "journal").iterdir())[0]
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[: len(lines) // 2]))
    assert_periods_agree(root, source)
    # a period that does not start at midnight is answered from the steps themselves
    since = now - timedelta(hours=30)
    source._cache.clear()
    assert close(source.step_type_breakdown(since=since), reference(root, since, None))


def test_duration_buckets_are_monotonic() -> None:
    values = sorted([-1e9, -5.5, -1.0, -0.1, 0.0, 0.1, 1.0, 1.5, 2.0, 99.9, 100.0, 1e6, 1e12, float("inf")])
    buckets = [duration_bucket(v) for v in values]
    assert buckets == sorted(buckets)
    assert duration_bucket(1000.0) != duration_bucket(1100.0)  # ~9 % wide: a bucket holds few steps


# -- local retention keeps the index in step ------------------------------------------------------


def _aged(task_id: str, steps: int, started: datetime) -> list[dict[str, Any]]:
    recs = records(task_id, steps)
    recs[0]["row"] = {**recs[0]["row"], "started_at": started.isoformat(), "finished_at": started.isoformat()}
    return recs


def _two_ages(root: Path) -> None:
    now = datetime.now(UTC)
    for i in range(4):  # each journal holds an old and a recent task
        writer = JournalWriter(root)
        writer.append(_aged(f"old-{i}", 20, now - timedelta(days=90)))
        writer.append(_aged(f"new-{i}", 20, now - timedelta(hours=1)))
        writer.close()


def test_cleanup_local_prunes_the_index_with_the_journals(tmp_path: Path) -> None:
    root = tmp_path / "backup"
    _two_ages(root)
    index = BackupIndex(root)
    index.refresh()
    generation = index.connection().execute("select value from meta where key = 'generation'").fetchone()[0]
    write(root, _aged("unseen", 3, datetime.now(UTC)))  # not applied yet when the cleanup runs
    report = BackupRetention(root).run(timedelta(days=30), dry_run=False)
    assert report.task_ids == [f"old-{i}" for i in range(4)]
    reader = BackupIndex(root)  # another process's view: it finds the index valid, no rebuild
    assert_consistent(root, reader)
    assert sorted(t["task_id"] for t in reader.tasks()) == [*(f"new-{i}" for i in range(4)), "unseen"]
    assert (
        reader.connection().execute("select value from meta where key = 'generation'").fetchone()[0]
        == generation
    )
    assert_consistent(root, index)
    source = BackupSource(root)
    assert close(source.step_type_breakdown(since=period_start(2)), reference(root, period_start(2), None))
    # appended after the cleanup: applied from the new files' ends
    shown, orphan = "ab/" + "1" * 64 + ".webp", "ab/" + "2" * 64 + ".webp"
    later = _aged("later", 5, datetime.now(UTC))
    later[1]["row"]["screenshot_path"] = shown
    write(root, later)
    assert_consistent(root, reader)
    # orphan screenshot files: the referenced ones are read from the index
    for key in (shown, orphan):
        (root / "screenshots" / key).parent.mkdir(parents=True, exist_ok=True)
        (root / "screenshots" / key).write_bytes(b"RIFF")
    swept = BackupRetention(root).run(timedelta(days=30), dry_run=False)
    BackupRetention(root).sweep_orphans(timedelta(0), swept, dry_run=False)
    assert swept.orphans == [orphan]
    assert (root / "screenshots" / shown).exists() and not (root / "screenshots" / orphan).exists()


def write(root: Path, recs: list[dict[str, Any]]) -> None:
    writer = JournalWriter(root)
    writer.append(recs)
    writer.close()


def test_cleanup_killed_between_rename_and_index_commit_rebuilds(tmp_path: Path) -> None:
    """SIGKILL after a journal was renamed over, before the index committed: the index still
    holds the old progress, sees a file that does not match it, and starts over."""
    root = tmp_path / "backup"
    _two_ages(root)
    BackupIndex(root).refresh()
    script = textwrap.dedent(f"""
        import os, signal
        from datetime import timedelta
        from stepsdk.ops import retention as _retention
        real = _retention.BackupRetention._rewrite
        def rewrite(self, plan):
            real(self, plan)
            os.kill(os.getpid(), signal.SIGKILL)  # the first journal is renamed over: die here
        _retention.BackupRetention._rewrite = rewrite
        _retention.BackupRetention({str(root)!r}).run(timedelta(days=30), dry_run=False)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT_DIR,
        env={**os.environ, "PYTHONPATH": str(ROOT_DIR)},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    index = BackupIndex(root)
    assert_consistent(root, index)  # one journal without its old task, the others with theirs
    assert len(index.tasks()) == 7
