"""Local retention at scale: ``stepsdk cleanup --local`` planning and rewriting.

    .venv/bin/python benchmarks/bench_cleanup.py [--tasks 10000] [--steps 200000] [--journals 100]
        [--shot-every 5] [--share 0.01] [--dir DIR] [--keep] [--in-place] [--no-index]

Generates a backup folder: TASKS tasks recorded one after the other by JOURNALS writers (each
journal holds a run of consecutive tasks, as an agent process writes them), STEPS steps in total,
every SHOT_EVERY-th step with a screenshot (a file and a screenshot row; each task's first
screenshot is one of 10 screens shared by every task, the others its own). Task ``t`` started
``30 s * t`` before the generation, so the oldest SHARE of the tasks are older than the age used.
Then, each in a fresh process on a fresh copy of the folder (its index built first by another
process, as the viewer or ``stepsdk status`` leaves it; a copied index would start over, for the
copied journals have other inodes):
  * ``dry run``: ``BackupRetention.run(age, dry_run=True)`` (``stepsdk cleanup --local --dry-run``);
  * ``cleanup``: the same for real (journals rewritten, files deleted, index pruned);
  * ``cleanup, no index``: the same after deleting ``index.sqlite3`` (it is rebuilt first).
Prints a markdown table: wall time, peak RSS of that process, journals whose file changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED_SCREENS = 10


def _path(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"{digest[:2]}/{digest}.webp"


def generate(root: Path, tasks: int, steps: int, journals: int, shot_every: int) -> dict[str, Any]:
    from stepsdk.store.backup import JournalWriter

    now = datetime.now(UTC).replace(microsecond=0)
    per_task, extra = divmod(steps, tasks)
    per_journal = -(-tasks // journals)
    files: set[str] = set()
    for j in range(journals):
        writer = JournalWriter(root, name=f"bench-{j:04d}")
        batch: list[dict[str, Any]] = []
        for t in range(j * per_journal, min(tasks, (j + 1) * per_journal)):
            task_id = f"task-{t:07d}"
            started = now - timedelta(seconds=30 * t)
            row = {"task_id": task_id, "title": f"task #{t}", "agent": f"agent-{t % 20}", "status": "success"}
            batch.append({"k": "task", "v": 1, "row": {**row, "started_at": started.isoformat()}})
            for n in range(1, per_task + (1 if t < extra else 0) + 1):
                step_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task_id}/{n}"))
                shot = None
                if n % shot_every == 0:
                    shot = _path(f"home-{t % SHARED_SCREENS}" if n == shot_every else f"{task_id}/{n}")
                    files.add(shot)
                created = (started + timedelta(seconds=n)).isoformat()
                batch.append(
                    {
                        "k": "step",
                        "row": {
                            "id": step_id,
                            "task_id": task_id,
                            "step_number": n,
                            "step_type": "action",
                            "thinking": f"step {n} of {task_id}: tap the button",
                            "screenshot_path": shot,
                            "duration_ms": float(50 + (t * 7 + n * 13) % 2000),
                            "success": True,
                            "created_at": created,
                        },
                    }
                )
                if shot is not None:
                    shot_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task_id}/{n}/shot"))
                    batch.append(
                        {
                            "k": "shot",
                            "row": {
                                "id": shot_id,
                                "task_id": task_id,
                                "step_id": step_id,
                                "screenshot_path": shot,
                                "file_size": 64,
                                "created_at": created,
                            },
                        }
                    )
            if len(batch) >= 5000:
                writer.append(batch)
                batch = []
        if batch:
            writer.append(batch)
        writer.close()
    for key in files:
        file = root / "screenshots" / key
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"RIFF" + key.encode())
    return {"now": now.isoformat(), "files": len(files)}


def child(mode: str, root: Path, age_s: float, gen_now: str) -> None:
    import resource

    from stepsdk.ops.retention import BackupRetention
    from stepsdk.store.index import INDEX_FILE, BackupIndex

    if mode == "build":
        BackupIndex(root).refresh()
        return
    if mode == "cleanup-no-index":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{root / INDEX_FILE}{suffix}").unlink(missing_ok=True)
    journals = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (root / "journal").glob("*.log")}
    # the age from now that takes the tasks older than `age_s` at generation time
    age = datetime.now(UTC) - datetime.fromisoformat(gen_now) + timedelta(seconds=age_s)
    start = time.perf_counter()
    report = BackupRetention(root).run(age, dry_run=mode == "dry-run")
    wall = time.perf_counter() - start
    changed = sum(
        1
        for p in (root / "journal").glob("*.log")
        if (p.stat().st_ino, p.stat().st_mtime_ns) != journals.get(p.name)
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_rss_mb": peak,
                "tasks": len(report.task_ids),
                "objects": len(report.objects_deleted),
                "journals_changed": changed,
                "ok": report.ok,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--journals", type=int, default=100)
    parser.add_argument("--shot-every", type=int, default=5)
    parser.add_argument("--share", type=float, default=0.01, help="fraction of the tasks old enough")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="no copies (big folders): the dry run, then the clean-up, on the generated folder itself",
    )
    parser.add_argument("--no-index", action="store_true", help="do not build the index first")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "ROOT", "AGE_S", "NOW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, root, age_s, gen_now = args.child
        child(mode, Path(root), float(age_s), gen_now)
        return
    from stepsdk.store.index import INDEX_FILE, BackupIndex

    work = args.dir or Path(tempfile.mkdtemp(prefix="stepsdk-bench-cleanup-"))
    base = work / "base"
    try:
        t0 = time.perf_counter()
        info = generate(base, args.tasks, args.steps, args.journals, args.shot_every)
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        if not args.no_index:
            BackupIndex(base).refresh()
        build_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (base / "journal").glob("*.log"))
        print(
            f"{args.tasks} tasks, {args.steps} steps, {args.journals} journals ({size / 1e6:.0f} MB), "
            f"{info['files']} screenshot files; generated in {gen_s:.1f} s, index built in {build_s:.1f} s"
        )
        # the oldest `share` of the tasks: task t started 30 s * t before generation
        age_s = 30 * (args.tasks * (1 - args.share)) - 15
        rows = []
        for mode in ("dry-run", "cleanup") if args.in_place else ("dry-run", "cleanup", "cleanup-no-index"):
            if args.in_place:
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(base), str(age_s), info["now"]],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows.append((mode, json.loads(proc.stdout.strip().splitlines()[-1])))
                continue
            copy = work / mode
            shutil.rmtree(copy, ignore_errors=True)
            # not the index: a copy's journals have other inodes, which makes an index start over
            shutil.copytree(base, copy, ignore=shutil.ignore_patterns(f"{INDEX_FILE}*"))
            if mode != "cleanup-no-index":  # the index as a viewer or `stepsdk status` leaves it
                subprocess.run([sys.executable, __file__, "--child", "build", str(copy), "0", ""], check=True)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(copy), str(age_s), info["now"]],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append((mode, json.loads(proc.stdout.strip().splitlines()[-1])))
            shutil.rmtree(copy, ignore_errors=True)
        print("| what | wall | peak RSS | tasks | files | journals rewritten |")
        print("|---|---:|---:|---:|---:|---:|")
        for mode, r in rows:
            print(
                f"| {mode} | {r['wall_s']:.2f} s | {r['peak_rss_mb']:.0f} MB | {r['tasks']} | "
                f"{r['objects']} | {r['journals_changed']} |"
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
