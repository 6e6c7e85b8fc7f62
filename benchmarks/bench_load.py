"""Load test of a running viewer: CLIENTS concurrent clients for SECONDS, loopback only.

    .venv/bin/python benchmarks/bench_load.py [--runs 3000] [--clients 20] [--seconds 30] [--supabase]

Generates RUNS runs the way recording processes leave them (one journal per run, 10 steps each,
5 agents, some failures), builds the backup index, starts ``python -m stepsdk.viewer --backup-dir`` and
lets CLIENTS clients (one connection each, one request at a time: the load is bounded) cycle
through the routes below for SECONDS. With ``--supabase`` the same runs are written to the local
Supabase stack (tests/supabase_local) and a viewer over it is measured the same way.
Prints, per route: requests, errors, p50 and p99 latency (ms); and the viewer's RSS (start,
peak, end; sampled every second).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

AGENTS = [f"agent-{i}" for i in range(5)]
ROUTES = {
    "GET /api/tasks (page 1)": "/api/tasks?per_page=25",
    "GET /api/tasks sorted by failed_steps": "/api/tasks?sort=failed_steps&per_page=25",
    "GET /api/tasks?agent=": "/api/tasks?agent=agent-2&per_page=25",
    "GET /api/tasks/{id}": "/api/tasks/{id}",
    "GET /api/tasks/{id}/steps": "/api/tasks/{id}/steps?per_page=50",
    "GET /api/stats?days=14": "/api/stats?days=14",
    "GET /api/stats?days=14&agent=": "/api/stats?days=14&agent=agent-3",
    "GET /api/search?q=": "/api/search?q=wifi%20toggle",
    "GET / (task list page HTML)": "/",
}


def run_records(i: int, now: datetime) -> list[dict[str, Any]]:
    task_id = f"run-{i:05d}"
    started = now - timedelta(minutes=7 * i)
    task = {
        "task_id": task_id,
        "title": f"Run {i}: open the {'wifi toggle' if i % 9 == 0 else 'settings'}",
        "description": None,
        "agent": AGENTS[i % 5],
        "status": "failed" if i % 8 == 0 else "success",
        "started_at": started.isoformat(),
        "finished_at": (started + timedelta(seconds=12)).isoformat(),
        "result": None,
        "error_message": None,
        "metadata": {},
        "owner_id": None,
    }
    out: list[dict[str, Any]] = [{"k": "task", "v": 1, "row": task}]
    for n in range(1, 11):
        failed = (i + n) % 23 == 0
        out.append(
            {
                "k": "step",
                "row": {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task_id}/{n}")),
                    "task_id": task_id,
                    "step_number": n,
                    "step_type": ("thinking", "action", "screenshot")[n % 3],
                    "step_data": {"x": n, "y": i % 2400},
                    "thinking": f"I will tap the {'wifi toggle' if (i + n) % 17 == 0 else 'next button'} ({n})",
                    "action_result": None,
                    "screenshot_path": None,
                    "duration_ms": float(40 + (i * 13 + n * 7) % 900),
                    "success": not failed,
                    "error_type": "LookupError" if failed else None,
                    "error_message": f"no element at ({i % 1080}, {n * 40})" if failed else None,
                    "stack_trace": None,
                    "started_at": None,
                    "metadata": {},
                    "created_at": (started + timedelta(seconds=n)).isoformat(),
                },
            }
        )
    return out


def generate(root: Path, runs: int) -> list[list[dict[str, Any]]]:
    from stepsdk.store.backup import JournalWriter

    now = datetime.now(UTC)
    all_runs = []
    for i in range(runs):
        recs = run_records(i, now)
        writer = JournalWriter(root)  # one journal per recording process, as in real life
        writer.append(recs)
        writer.close()
        all_runs.append(recs)
    return all_runs


def seed_supabase(stack: Any, runs: list[list[dict[str, Any]]]) -> None:
    client = stack.client()
    tasks = [r[0]["row"] for r in runs]
    steps = [s["row"] for r in runs for s in r[1:]]
    for i in range(0, len(tasks), 500):
        client.table("tasks").upsert(tasks[i : i + 500]).execute()
    for i in range(0, len(steps), 1000):
        client.table("task_steps").upsert(steps[i : i + 1000]).execute()
    stack.sql("analyze")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class RawClient:
    """One keep-alive HTTP/1.1 connection, reading just enough of each answer to know it ended
    (Content-Length or chunked). A few microseconds of Python per request, so that the load
    generator, sharing the viewer's 2 cores, is not what the latencies measure (httpx spends
    a few milliseconds of CPU per request: `--client httpx` for comparison)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> _Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
            if "content-length" in headers:
                await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await self.reader.readexactly(size + 2)
                    if size == 0:
                        break
            if headers.get("connection", "").lower() == "close":
                await self.aclose()
            return _Response(status)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


async def load(
    url: str, pid: int, clients: int, seconds: float, task_ids: list[str], raw: bool = True
) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {name: [] for name in ROUTES}
    errors: dict[str, int] = dict.fromkeys(ROUTES, 0)
    rss = [rss_mb(pid)]
    cpu_start = (cpu_seconds(pid), time.process_time())
    stop = time.monotonic() + seconds

    async def client(n: int) -> None:
        names = list(ROUTES)
        rng = random.Random(n)
        http: Any = RawClient(url) if raw else httpx.AsyncClient(base_url=url, timeout=30)
        try:
            i = n
            while time.monotonic() < stop:
                name = names[i % len(names)]
                i += 1
                path = ROUTES[name].replace("{id}", rng.choice(task_ids))
                t0 = time.perf_counter()
                try:
                    status = (await http.get(path)).status_code
                    ok = status == 200
                except (httpx.HTTPError, OSError, ValueError, asyncio.IncompleteReadError):
                    ok = False
                latencies[name].append((time.perf_counter() - t0) * 1000)
                if not ok:
                    errors[name] += 1
        finally:
            await http.aclose()

    async def sampler() -> None:
        while time.monotonic() < stop:
            await asyncio.sleep(1)
            rss.append(rss_mb(pid))

    await asyncio.gather(sampler(), *(client(n) for n in range(clients)))
    rss.append(rss_mb(pid))
    cpu = {"viewer": cpu_seconds(pid) - cpu_start[0], "load generator": time.process_time() - cpu_start[1]}
    return {"latencies": latencies, "errors": errors, "rss": rss, "cpu": cpu}


def report(title: str, result: dict[str, Any], seconds: float) -> None:
    total = sum(len(v) for v in result["latencies"].values())
    print(
        f"\n### {title}\n\n{total:,} requests in {seconds:.0f} s ({total / seconds:.0f}/s), "
        f"viewer RSS {result['rss'][0]:.0f} MB at start, {max(result['rss']):.0f} MB peak, "
        f"{result['rss'][-1]:.0f} MB at the end (every 10 s: "
        f"{', '.join(f'{v:.0f}' for v in result['rss'][::10])} MB); CPU seconds used: "
        f"{', '.join(f'{k} {v:.1f}' for k, v in result['cpu'].items())}\n"
    )
    print("| route | requests | errors | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
    for name, values in result["latencies"].items():
        values = sorted(values)
        p50 = statistics.median(values) if values else float("nan")
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")
        print(f"| {name} | {len(values)} | {result['errors'][name]} | {p50:.0f} | {p99:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--supabase", action="store_true", help="also measure a viewer over the local stack")
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="the load generator's HTTP client (see RawClient)",
    )
    args = parser.parse_args()

    from stepsdk.store.index import BackupIndex
    from tests.viewer.test_browser import ViewerServer

    tmp = Path(tempfile.mkdtemp(prefix="stepsdk-bench-load-"))
    root = tmp / "backup"
    try:
        t0 = time.perf_counter()
        runs = generate(root, args.runs)
        t1 = time.perf_counter()
        BackupIndex(root).refresh()
        print(
            f"{args.runs:,} runs ({args.runs} journals, {args.runs * 10:,} steps) generated in {t1 - t0:.0f} s, "
            f"index built in {time.perf_counter() - t1:.1f} s"
        )
        task_ids = [r[0]["row"]["task_id"] for r in runs]
        server = ViewerServer(["--backup-dir", str(root)])
        try:
            result = asyncio.run(
                load(server.url, server.proc.pid, args.clients, args.seconds, task_ids, args.client == "raw")
            )
        finally:
            server.stop()
        report(f"backup source ({args.clients} clients, {args.seconds:.0f} s)", result, args.seconds)
        if args.supabase:
            from tests.supabase_local import LocalStack

            with LocalStack.start() as stack:
                seed_supabase(stack, runs)
                server = ViewerServer(
                    ["--supabase-url", stack.url], env={"SUPABASE_SECRET_KEY": stack.service_role_key}
                )
                try:
                    result = asyncio.run(
                        load(
                            server.url,
                            server.proc.pid,
                            args.clients,
                            args.seconds,
                            task_ids,
                            args.client == "raw",
                        )
                    )
                finally:
                    server.stop()
            report(
                f"Supabase source, local stack ({args.clients} clients, {args.seconds:.0f} s)",
                result,
                args.seconds,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
