"""How fast the viewer opens big tasks and a big task list.

    .venv/bin/python benchmarks/bench_viewer.py [--tasks 100000] [--sizes 100,1000,10000] [--runs 3]
        [--backup-tasks 10000] [--no-browser]

Supabase (local stack, tests/supabase_local): TASKS tasks of 3 steps each, plus one task per
SIZE steps (every 10th step with a screenshot). Backup folder: the SIZE tasks again, and
BACKUP_TASKS tasks of 3 steps. For each, the median of RUNS of:
  * data: the data-source calls the task page makes before it is usable (task, first 50 steps,
    their screenshots) and after (all step durations for the chart, step types); the task
    list's first page (25 rows, newest first, with the total count);
  * api: GET /api/tasks/{id}/steps?per_page=50, GET /api/tasks?per_page=25 and GET /api/stats?days=14
    on a running viewer; the statistics page's data (daily stats, step types, top errors, slowest steps);
  * browser: headless Chromium, from navigation start until the page is usable ("Step 1 of N"
    shown, or the list's rows) and until the duration chart is drawn.
Prints markdown tables (milliseconds).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from tests.viewer.dataset import storage_key, webp


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def seed_supabase(stack: Any, tasks: int, sizes: list[int]) -> dict[int, str]:
    client = stack.client()
    images = [webp((40 * n % 255, 90, 160), label=f"img {n}") for n in range(5)]
    keys = [storage_key(i) for i in images]
    for (path, _), data in zip(keys, images, strict=True):
        client.storage.from_("step-screenshots").upload(
            path, data, {"content-type": "image/webp", "upsert": "true"}
        )
    stack.sql(
        """insert into public.tasks (task_id, title, agent, status, started_at, finished_at)
                 select 'bulk-' || t, 'bulk task ' || t, 'agent-' || (t %% 7),
                        case when t %% 10 = 0 then 'failed' else 'success' end,
                        now() - make_interval(secs => t * 5), now() - make_interval(secs => t * 5) + interval '3 s'
                 from generate_series(1, %s) t""",
        (tasks,),
    )
    stack.sql(
        """insert into public.task_steps (task_id, step_number, step_type, duration_ms, success, step_data)
                 select 'bulk-' || t, s, 'action', 100 + s * 10 + t %% 50, (t + s) %% 13 <> 0,
                        jsonb_build_object('action', 'tap', 'x', 100, 'y', 200)
                 from generate_series(1, %s) t, generate_series(1, 3) s""",
        (tasks,),
    )
    ids = {}
    for size in sizes:
        task_id = f"long-{size}"
        ids[size] = task_id
        stack.sql(
            """insert into public.tasks (task_id, title, agent, status, started_at, finished_at)
                     values (%s, %s, 'bench', 'success', now() - interval '1 hour', now())""",
            (task_id, f"{size} steps"),
        )
        stack.sql(
            """insert into public.task_steps (id, task_id, step_number, step_type, duration_ms, success,
                                                    step_data, thinking, screenshot_path, started_at)
                     select md5(%s || s)::uuid, %s, s, (array['thinking','action','screenshot'])[1 + s %% 3],
                            50 + (s * 37) %% 900, s %% 50 <> 0,
                            jsonb_build_object('action', 'tap', 'element', jsonb_build_array(500, 300)),
                            'step ' || s || ': deciding what to do next',
                            case when s %% 10 = 0 then (%s::text[])[1 + (s / 10) %% 5] end,
                            now() - interval '1 hour' + make_interval(secs => s)
                     from generate_series(1, %s) s""",
            (task_id, task_id, [k for k, _ in keys], size),
        )
        stack.sql(
            """insert into public.step_screenshots (task_id, step_id, screenshot_path, file_size, file_hash, metadata)
                     select task_id, id, screenshot_path, 1000, split_part(split_part(screenshot_path, '/', 2), '.', 1),
                            '{"width": 270, "height": 600, "original_width": 1080, "original_height": 2400}'
                     from public.task_steps where task_id = %s and screenshot_path is not null""",
            (task_id,),
        )
    stack.sql("analyze")
    return ids


def seed_backup(root: Path, stack: Any, sizes: list[int], tasks: int) -> None:
    """The long tasks copied from Supabase, plus ``tasks`` small tasks, through the backup writer."""
    from stepsdk.store.backup import JournalWriter, write_screenshot

    writer = JournalWriter(root)
    for size in sizes:
        task_id = f"long-{size}"
        task = stack.sql("select * from public.tasks where task_id = %s", (task_id,))[0]
        steps = stack.sql("select * from public.task_steps where task_id = %s", (task_id,))
        shots = stack.sql("select * from public.step_screenshots where task_id = %s", (task_id,))
        writer.append([{"k": "task", "v": 1, "row": _json_row(task)}])
        for i in range(0, len(steps), 1000):
            writer.append([{"k": "step", "row": _json_row(s)} for s in steps[i : i + 1000]])
        writer.append([{"k": "shot", "row": _json_row(s)} for s in shots])
    for i in range(0, tasks, 1000):
        batch = []
        for t in range(i, min(i + 1000, tasks)):
            tid = f"small-{t}"
            batch.append(
                {
                    "k": "task",
                    "v": 1,
                    "row": {
                        "task_id": tid,
                        "title": f"small {t}",
                        "agent": "b",
                        "status": "success",
                        "started_at": "2026-11-01T00:00:00+00:00",
                        "finished_at": "2026-11-01T00:00:03+00:00",
                    },
                }
            )
            batch += [
                {
                    "k": "step",
                    "row": {
                        "id": str(uuid.uuid4()),
                        "task_id": tid,
                        "step_number": s,
                        "step_type": "action",
                        "duration_ms": 100.0,
                        "success": True,
                        "created_at": "2026-11-01T00:00:01+00:00",
                    },
                }
                for s in (1, 2, 3)
            ]
        writer.append(batch)
    writer.close()
    client = stack.client()
    for row in stack.sql("select distinct screenshot_path from public.step_screenshots"):
        write_screenshot(
            root,
            row["screenshot_path"],
            client.storage.from_("step-screenshots").download(row["screenshot_path"]),
        )


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.isoformat() if hasattr(v, "isoformat") else str(v) if isinstance(v, uuid.UUID) else v)
        for k, v in row.items()
        if k not in ("created_at", "updated_at") or v is not None
    }


def data_times(source: Any, task_id: str, runs: int) -> tuple[float, float]:
    from stepsdk.viewer.data.base import Sort, TaskFilters  # noqa: F401

    def usable() -> None:
        source.get_task(task_id)
        steps, _ = source.get_steps(task_id, 1, 50)
        ids = [s["id"] for s in steps if s.get("screenshot_path")]
        source.get_screenshots(task_id, ids)

    def after() -> None:
        source.step_durations(task_id)
        source.step_type_breakdown(task_id)

    return median_ms(usable, runs), median_ms(after, runs)


def list_time(source: Any, runs: int) -> float:
    from stepsdk.viewer.data.base import Sort, TaskFilters

    return median_ms(lambda: source.list_tasks(TaskFilters(), Sort(), 1, 25), runs)


def browser_times(
    driver: Any, url: str, ready_text: str, runs: int, chart: bool
) -> tuple[float, float | None]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    usable, charted = [], []
    for _ in range(runs):
        driver.get("about:blank")
        start = time.perf_counter()
        driver.get(url)
        WebDriverWait(driver, 120, poll_frequency=0.02).until(
            lambda d: ready_text in d.find_element(By.TAG_NAME, "body").text
        )
        usable.append((time.perf_counter() - start) * 1000)
        if chart:
            WebDriverWait(driver, 120, poll_frequency=0.02).until(
                lambda d: d.execute_script("return document.querySelectorAll('canvas').length >= 2")
            )
            charted.append((time.perf_counter() - start) * 1000)
    return statistics.median(usable), statistics.median(charted) if charted else None


def make_driver() -> Any:
    from tests.chromium import chrome

    return chrome(browser_log=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--backup-tasks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    logging.basicConfig(level=logging.WARNING)

    from stepsdk.viewer.data.backup_source import BackupSource
    from stepsdk.viewer.data.supabase_source import SupabaseSource
    from tests.supabase_local import LocalStack
    from tests.viewer.test_browser import ViewerServer

    stack = LocalStack.start()
    try:
        t0 = time.perf_counter()
        ids = seed_supabase(stack, args.tasks, sizes)
        backup_root = Path(tempfile.mkdtemp()) / "backup"
        seed_backup(backup_root, stack, sizes, args.backup_tasks)
        print(f"seeded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        sources = {
            "supabase": SupabaseSource(stack.url, stack.service_role_key),
            "backup": BackupSource(backup_root),
        }
        servers = {
            "supabase": ViewerServer(
                ["--supabase-url", stack.url], env={"SUPABASE_SECRET_KEY": stack.service_role_key}
            ),
            "backup": ViewerServer(["--backup-dir", str(backup_root)]),
        }
        driver = None if args.no_browser else make_driver()
        counts = {"supabase": args.tasks + len(sizes), "backup": args.backup_tasks + len(sizes)}
        rows = []
        try:
            for name, source in sources.items():
                first = time.perf_counter()
                list_time(source, 1)
                cold = (time.perf_counter() - first) * 1000
                server = servers[name]
                api_list = median_ms(
                    lambda s=server: httpx.get(s.url + "/api/tasks?per_page=25", timeout=120), args.runs
                )
                b_list = (
                    browser_times(driver, server.url + "/", "tasks", args.runs, False)[0] if driver else None
                )
                rows.append(
                    (
                        name,
                        f"task list ({counts[name]:,} tasks)",
                        list_time(source, args.runs),
                        None,
                        api_list,
                        b_list,
                        None,
                        cold,
                    )
                )
                stats = median_ms(
                    lambda s=source: (
                        s.get_daily_stats(14),
                        s.step_type_breakdown(),
                        s.top_errors(10),
                        s.slowest_steps(10),
                    ),
                    args.runs,
                )
                api_stats = median_ms(
                    lambda s=server: httpx.get(s.url + "/api/stats?days=14", timeout=120), args.runs
                )
                b_stats = (
                    browser_times(driver, server.url + "/stats", "Most frequent errors", args.runs, False)[0]
                    if driver
                    else None
                )
                rows.append((name, "statistics (14 days)", stats, None, api_stats, b_stats, None, None))
                for size in sizes:
                    task_id = ids[size]
                    usable, after = data_times(source, task_id, args.runs)
                    api = median_ms(
                        lambda s=server, t=task_id: httpx.get(
                            f"{s.url}/api/tasks/{t}/steps?per_page=50", timeout=120
                        ),
                        args.runs,
                    )
                    b_usable, b_chart = (
                        browser_times(
                            driver, f"{server.url}/tasks/{task_id}", f"Step 1 of {size}", args.runs, True
                        )
                        if driver
                        else (None, None)
                    )
                    rows.append(
                        (name, f"task of {size:,} steps", usable, after, api, b_usable, b_chart, None)
                    )
        finally:
            if driver:
                driver.quit()
            for server in servers.values():
                server.stop()
        print(
            "| source | page | data: until usable | data: charts | API call | browser: usable | browser: charts drawn | first read (cold) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for row in rows:
            print(
                "| "
                + " | ".join(v if isinstance(v, str) else "–" if v is None else f"{v:,.0f} ms" for v in row)
                + " |"
            )
    finally:
        stack.close()


if __name__ == "__main__":
    main()
