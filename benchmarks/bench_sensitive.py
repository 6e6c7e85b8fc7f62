"""Sensitive screens on the screenshot stage: what encryption, redaction and region blurring cost.

    .venv/bin/python benchmarks/bench_sensitive.py [--runs 5]

For the five 1080x2400 phone screens of tests/fixtures_images.py (PNG as ``adb screencap -p``
gives them), the CPU time of the screenshot stage (``stepsdk.recording.sensitive.prepare``: decode,
regions, downscale, WebP, encryption) per policy: a plain screen (today), ``encrypt``
(AES-256-GCM of the WebP), ``redact`` (the fixed placeholder: nothing decoded), and two
``redact_regions`` boxes (a password field and a card number) blacked out or blurred. Then the
caller-thread cost of ``record_step`` with ``sensitive=True, redact_regions=[...]`` next to a
bare ``queue.put`` (the hot-path bound is 3x). Prints markdown tables (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stepsdk import StepTracker
from stepsdk.config import Config
from stepsdk.recording import sensitive as _sensitive
from stepsdk.recording.screenshots import capture
from tests.fixtures_images import SCREENS, png_bytes

REGIONS = ((60, 900, 960, 140), (60, 1200, 960, 140))  # two form fields of a 1080-wide screen


def cpu_ms(fn: Callable[[], object], runs: int) -> float:
    """Median CPU time of ``fn`` on this thread (the box is shared: wall time measures neighbours)."""
    times = []
    for _ in range(runs):
        t0 = time.thread_time()
        fn()
        times.append((time.thread_time() - t0) * 1000)
    return statistics.median(times)


def stage_table(runs: int) -> None:
    key = _sensitive.generate_key()
    os.environ[_sensitive.ENV_KEY] = key
    configs = {
        "plain screen (store)": (Config.resolve("", "", "unused"), None, None),
        "sensitive, encrypt": (Config.resolve("", "", "unused", screenshot_policy="encrypt"), True, None),
        "sensitive, redact": (Config.resolve("", "", "unused", screenshot_policy="redact"), True, None),
        "2 regions, black": (Config.resolve("", "", "unused"), None, REGIONS),
        "2 regions, blur": (Config.resolve("", "", "unused", region_style="blur"), None, REGIONS),
        "encrypt + 2 regions blur": (
            Config.resolve("", "", "unused", screenshot_policy="encrypt", region_style="blur"),
            True,
            REGIONS,
        ),
    }
    screens = {name: png_bytes(make()) for name, make in SCREENS.items()}
    print(f"| screenshot stage, CPU ms (median of {runs}) | " + " | ".join(screens) + " | max |")
    print("|---|" + "---|" * (len(screens) + 1))
    encrypt_only = []
    for label, (config, sensitive, regions) in configs.items():
        row = []
        for data in screens.values():
            ref = capture(data, sensitive=sensitive)
            if regions:
                ref = _sensitive.mark(ref, sensitive, list(regions))
            row.append(cpu_ms(lambda r=ref, c=config: _sensitive.prepare(r, c), runs))
        print(f"| {label} | " + " | ".join(f"{v:.0f}" for v in row) + f" | {max(row):.0f} |")
    k = _sensitive.parse_key(key)
    for size in (50_000, 150_000):  # too short for the CPU clock's resolution: wall time of 500 calls
        blob = os.urandom(size)
        t0 = time.perf_counter()
        for _ in range(500):
            _sensitive.encrypt(blob, k)
        encrypt_only.append((size, (time.perf_counter() - t0) * 1000 / 500))
    print()
    print("AES-256-GCM alone: " + ", ".join(f"{s // 1000} KB WebP {ms:.2f} ms" for s, ms in encrypt_only))


def hot_path(calls: int) -> None:
    """Median caller-thread cost. Each variant runs ``calls`` (< max_queue) calls, then waits for the
    background threads: no backpressure (a full queue makes the caller write) in the numbers."""
    # The caller keeps encoded bytes by reference: its cost does not depend on the image, so a
    # tiny one keeps the flushes between variants short.
    shot = png_bytes(SCREENS["settings"]().resize((36, 80)))
    q: queue.Queue[object] = queue.Queue()
    payload = {"action": "tap", "x": 540, "y": 720}
    regions = list(REGIONS)

    with (
        tempfile.TemporaryDirectory() as tmp,
        StepTracker(backup_dir=tmp, supabase_url="", supabase_key="") as tracker,
    ):

        def measure(fn: Callable[[], object]) -> float:
            samples = []
            for i in range(calls + 100):
                t0 = time.perf_counter_ns()
                fn()
                if i >= 100:  # the first 100 warm up
                    samples.append(time.perf_counter_ns() - t0)
            tracker.flush(600)
            return statistics.median(samples) / 1000

        variants = {
            "queue.put": lambda: q.put(payload),
            "record_step, no screenshot": lambda: tracker.record_step("action", payload),
            "record_step, screenshot": lambda: tracker.record_step("action", payload, screenshot=shot),
            "record_step, screenshot, sensitive=True": lambda: tracker.record_step(
                "action", payload, screenshot=shot, sensitive=True
            ),
            "record_step, screenshot, sensitive, 2 redact_regions": lambda: tracker.record_step(
                "action", payload, screenshot=shot, sensitive=True, redact_regions=regions
            ),
        }
        rows = {label: measure(fn) for label, fn in variants.items()}
        spilled = tracker.stats().spilled
    print()
    print(f"| caller thread ({calls} calls each, then a flush) | median µs | x queue.put |")
    print("|---|---|---|")
    for label, us in rows.items():
        print(f"| {label} | {us:.2f} | {us / rows['queue.put']:.1f}x |")
    print(f"\nsteps written on the caller's thread (queue full): {spilled}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=800)
    parser.add_argument("--only", choices=("stage", "caller"))
    args = parser.parse_args()
    if args.only != "caller":
        stage_table(args.runs)
    if args.only != "stage":
        hot_path(args.calls)


if __name__ == "__main__":
    main()
