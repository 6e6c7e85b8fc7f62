"""Throughput of the operations commands: export, import, cleanup (Supabase stack and backup).

    .venv/bin/python benchmarks/bench_cli_ops.py [--tasks 500] [--steps 20] [--images 50]

Starts the local Supabase stack (tests/supabase_local), writes TASKS tasks of STEPS steps each
(every 4th step with a screenshot row pointing at one of IMAGES shared WebP objects), then times:
export JSON from Supabase, export zip with screenshots, import of the zip into a fresh backup,
export JSON from that backup, cleanup --dry-run and cleanup (batches of 100) on Supabase, and
cleanup of the backup. Prints a markdown table (seconds, rows per second).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def seed(stack: object, tasks: int, steps: int, images: int) -> None:
    from tests.cli_data import BUCKET, key_of, webp

    client = stack.client()  # type: ignore[attr-defined]
    keys = []
    for n in range(images):
        data = webp(n, (200, 400))
        path = key_of(data)  # "<sha[:2]>/<sha>.webp"
        keys.append((path, len(data), path[3:67]))
        client.storage.from_(BUCKET).upload(path, data, {"content-type": "image/webp", "upsert": "true"})
    stack.sql(  # type: ignore[attr-defined]
        """insert into public.tasks (task_id, status, started_at, finished_at, agent, metadata)
           select 'bench-' || t, 'success', now() - interval '40 days' - make_interval(secs => t),
                  now() - interval '40 days', 'bench', '{"k": 1}'
           from generate_series(1, %s) t""",
        (tasks,),
    )
    stack.sql(  # type: ignore[attr-defined]
        """insert into public.task_steps (id, task_id, step_number, step_type, step_data, thinking, duration_ms)
           select gen_random_uuid(), 'bench-' || t, s, 'action', jsonb_build_object('x', s, 'text', repeat('a', 100)),
                  'thinking about step ' || s, s * 1.5
           from generate_series(1, %s) t, generate_series(1, %s) s""",
        (tasks, steps),
    )
    for n, (path, size, sha) in enumerate(keys):
        stack.sql(  # type: ignore[attr-defined]
            """insert into public.step_screenshots (task_id, step_id, screenshot_path, file_size, file_hash)
               select s.task_id, s.id, %s, %s, %s from public.task_steps s
               where s.step_number %% 4 = 0 and (hashtext(s.id::text) & 2147483647) %% %s = %s""",
            (path, size, sha, len(keys), n),
        )


def timed(label: str, rows: int, results: list[tuple[str, float, int]], fn: object) -> None:
    start = time.perf_counter()
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = fn()  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{label} exited {status}: {err.getvalue()[:2000]}")
    results.append((label, elapsed, rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import os

    from stepsdk.cli import main as cli
    from tests.supabase_local import LocalStack

    stack = LocalStack.start()
    try:
        seed(stack, args.tasks, args.steps, args.images)
        os.environ.update(SUPABASE_URL=stack.url, SUPABASE_SECRET_KEY=stack.service_role_key)
        os.environ.pop("SUPABASE_SERVICE_ROLE_KEY", None)
        rows = args.tasks * (args.steps + 1)
        results: list[tuple[str, float, int]] = []
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            backup = out / "backup"
            timed(
                "export JSON (Supabase)", rows, results, lambda: cli(["export", "-o", str(out / "all.json")])
            )
            timed(
                "export zip + images (Supabase)",
                rows,
                results,
                lambda: cli(["export", "--with-screenshots", "-o", str(out / "all.zip")]),
            )
            timed(
                "import zip into a backup",
                rows,
                results,
                lambda: cli(["import", str(out / "all.zip"), "--backup-dir", str(backup)]),
            )
            timed(
                "export JSON (backup)",
                rows,
                results,
                lambda: cli(["export", "--backup-dir", str(backup), "-o", str(out / "b.json")]),
            )
            timed(
                "cleanup --dry-run (Supabase)",
                args.tasks,
                results,
                lambda: cli(["cleanup", "--older-than", "30d", "--dry-run"]),
            )
            timed(
                "cleanup, batches of 100 (Supabase)",
                args.tasks,
                results,
                lambda: cli(["cleanup", "--older-than", "30d", "--batch-size", "100"]),
            )
            timed(
                "cleanup (backup)",
                args.tasks,
                results,
                lambda: cli(
                    ["cleanup", "--older-than", "30d", "--backup-dir", str(backup), "--include-pending"]
                ),
            )
            size = (out / "all.json").stat().st_size
            zsize = (out / "all.zip").stat().st_size
    finally:
        stack.close()
    print(
        f"{args.tasks} tasks x {args.steps} steps, {args.images} shared images; "
        f"export.json {size / 1e6:.1f} MB, zip {zsize / 1e6:.1f} MB\n"
    )
    print("| operation | seconds | rows/s |\n|---|---:|---:|")
    for label, elapsed, n in results:
        print(f"| {label} | {elapsed:.2f} | {n / elapsed:,.0f} |")


if __name__ == "__main__":
    main()
