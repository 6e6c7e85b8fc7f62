"""Sizes and times of the sharing formats (``stepsdk export --format html|gif|webp|mp4``).

A 100-step phone run: realistic 1080x2400 screens (tests/fixtures_images.py, four kinds, a new
seed each step) stored as the recorder stores them (``prepare()``: 720 px wide WebP q80), with
PhoneAgent step_data (Tap / Swipe / Type / Launch / Back in 0-1000 coordinates) - then the HTML
report, GIF, animated WebP and MP4 of it, and the HTML report of ``stepsdk demo``'s run.

    .venv/bin/python benchmarks/bench_share.py [--steps 100]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stepsdk.ops import export as _export
from stepsdk.recording.screenshots import capture, prepare
from stepsdk.share import animation, html_report
from stepsdk.share.run import shared_run
from tests import fixtures_images
from tests.share import phone_run

SCREENS = (
    fixtures_images.settings_screen,
    fixtures_images.list_screen,
    fixtures_images.chat_screen,
    fixtures_images.feed_screen,
)


def build_run(steps: int) -> dict:
    run = phone_run.build(steps=steps, task_id="bench-100", xss_step=None, failed_step=7)
    for n, (step, shot) in enumerate(zip(run["steps"], run["screenshots"], strict=True), start=1):
        image = SCREENS[n % len(SCREENS)](seed=n)
        buf = io.BytesIO()
        image.save(buf, "PNG", compress_level=6)  # what adb screencap -p hands the agent
        prepared = prepare(capture(buf.getvalue()))
        run["objects"].pop(step["screenshot_path"], None)
        run["objects"][prepared.screenshot_path] = prepared.data
        step["screenshot_path"] = shot["screenshot_path"] = prepared.screenshot_path
        step["step_data"]["screen"] = {"width": 1080, "height": 2400}
        if "point" in step["step_data"]:
            element = step["step_data"]["action"]["element"]
            step["step_data"]["point"] = {
                "x": int(element[0] / 1000 * 1080),
                "y": int(element[1] / 1000 * 2400),
            }
        shot["metadata"] = {
            "width": prepared.width,
            "height": prepared.height,
            "original_width": 1080,
            "original_height": 2400,
        }
        shot["file_size"], shot["file_hash"] = prepared.file_size, prepared.sha256
    return run


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.process_time()
        result = fn()
        best = min(best, time.process_time() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "backup"
        run = build_run(args.steps)
        phone_run.write_backup(root, run)
        source = _export.BackupExportSource(root)
        bundle = source.fill(source.tasks(_export.TaskFilter()))[0]
        shots = sum(len(d) for d in run["objects"].values())
        print(
            f"## {args.steps} phone steps, stored screenshots {shots / 1024:.0f} KB "
            f"({shots / len(run['objects']) / 1024:.1f} KB each, {run['screenshots'][0]['metadata']['width']}x"
            f"{run['screenshots'][0]['metadata']['height']})\n"
        )
        print("| output | size | CPU time (best of 3) |\n|---|---|---|")
        load_s, shared = timed(lambda: shared_run(bundle, source.screenshot))
        print(f"| read + decode sizes + overlay (shared_run) | - | {load_s * 1000:.0f} ms |")
        s, page = timed(lambda: html_report.render(shared))
        print(f"| HTML report | {len(page.encode()) / 1024:.0f} KB | {s * 1000:.0f} ms |")
        for fmt in ("gif", "webp"):

            def encode(fmt: str = fmt) -> bytes:
                buf = io.BytesIO()
                animation.write_pillow(shared, buf, fmt)
                return buf.getvalue()

            s, data = timed(encode, repeat=1)
            print(f"| {fmt.upper()} ({args.steps} frames) | {len(data) / 1024:.0f} KB | {s * 1000:.0f} ms |")
        mp4 = Path(tmp) / "run.mp4"
        started_wall = time.perf_counter()
        s, _ = timed(lambda: animation.write_mp4(shared, mp4), repeat=1)
        wall = time.perf_counter() - started_wall
        print(
            f"| MP4 ({args.steps} frames, H.264) | {mp4.stat().st_size / 1024:.0f} KB | {s * 1000:.0f} ms "
            f"(+ ffmpeg process; wall {wall * 1000:.0f} ms) |"
        )

        from stepsdk.integrations.demo_agent import record_demo

        demo = record_demo(backup_dir=Path(tmp) / "demo", pace=0)
        demo_source = _export.BackupExportSource(Path(tmp) / "demo")
        demo_bundle = demo_source.fill(demo_source.tasks(_export.TaskFilter((demo.task_id,))))[0]
        demo_page = html_report.render(shared_run(demo_bundle, demo_source.screenshot))
        print(f"\nHTML report of the demo run ({demo.steps} steps): {len(demo_page.encode()) / 1024:.0f} KB")


if __name__ == "__main__":
    main()
