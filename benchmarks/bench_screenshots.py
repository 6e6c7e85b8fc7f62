"""Screenshot storage: bytes stored and time spent, to choose ``ScreenshotOptions`` defaults.

    .venv/bin/python benchmarks/bench_screenshots.py            # full run (~2 min on 2 cores)
    .venv/bin/python benchmarks/bench_screenshots.py --runs 1   # quicker, noisier

Generates realistic 1080x2400 phone screens with Pillow (tests/fixtures_images.py), encodes
each as the agent gets it (``adb screencap -p``: PNG, zlib level 6), then measures
``prepare()`` (decode PNG + downscale + WebP encode + sha256) for several settings, the
caller-thread cost of ``capture()``, and how long ``prepare()`` on a worker thread can stall
the agent's thread (the GIL). Prints markdown tables (copied into benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import math
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stepsdk.recording.screenshots import ScreenshotOptions, capture, prepare
from tests.fixtures_images import SCREENS, png_bytes

WIDTHS = (1080, 720, 540)
LOSSY = ((70, 4), (75, 4), (80, 4), (85, 4), (80, 2), (80, 6))
DEFAULT = ScreenshotOptions()


def median_ms(fn: Callable[[], object], runs: int) -> float:
    """Median CPU time of ``fn`` on this thread, in ms.

    CPU time, not wall time: the 2 cores are shared with other work, and Pillow's decoders and
    encoders are single-threaded, so on an idle core wall time equals this.
    """
    times = []
    for _ in range(runs):
        t0 = time.thread_time()
        fn()
        times.append((time.thread_time() - t0) * 1000)
    return statistics.median(times)


def kb(n: float) -> str:
    return f"{n / 1024:.0f}"


PHOTO_LIKE = ("feed", "gallery")  # the others are flat UI


def settings_table(pngs: dict[str, bytes], runs: int) -> None:
    names = list(pngs)
    print("\n### Stored KB and prepare() CPU ms (median) per setting; `L` = stored lossless\n")
    head = " | ".join(f"{n} KB | ms" for n in names)
    print(f"| width | setting | {head} | min PNG/stored: flat UI, photo-like | max ms |")
    print("|---" * (2 + 2 * len(names) + 2) + "|")
    pngs_row = " | ".join(f"{kb(len(pngs[n]))} | -" for n in names)
    print(f"| 1080 | agent PNG (zlib 6) | {pngs_row} | 1x, 1x | - |")
    rows: list[tuple[int, str, ScreenshotOptions]] = [
        (1080, f"lossless m{m}", ScreenshotOptions(encoding="lossless", lossless_method=m)) for m in (0, 1, 4)
    ]
    for width in WIDTHS:
        rows += [
            (
                width,
                f"lossy q{q} m{m}",
                ScreenshotOptions(max_width=width, quality=q, method=m, encoding="lossy"),
            )
            for q, m in LOSSY
        ]
        rows.append(
            (width, "auto (q80 m4 / lossless m1)", ScreenshotOptions(max_width=width, encoding="auto"))
        )
    for width, label, opts in rows:
        if opts == DEFAULT:
            label = f"**{label} (default)**"
        # Lossless on photos takes seconds; one run tells that story.
        print(
            f"| {width} | {label} | " + setting_cells(pngs, opts, 1 if opts.encoding == "lossless" else runs)
        )


def setting_cells(pngs: dict[str, bytes], opts: ScreenshotOptions, runs: int) -> str:
    cells, flat, photo, worst = [], [], [], 0.0
    for name, png in pngs.items():
        ref = capture(png)
        prepared = prepare(ref, opts)
        ms = median_ms(lambda ref=ref: prepare(ref, opts), runs)
        worst = max(worst, ms)
        mark = " L" if prepared.metadata["encoding"] == "lossless" else ""
        cells.append(f"{kb(prepared.file_size)}{mark} | {ms:.0f}")
        (photo if name in PHOTO_LIKE else flat).append(len(png) / prepared.file_size)
    return " | ".join(cells) + f" | {min(flat):.1f}x, {min(photo):.1f}x | {worst:.0f} |"


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    mse = sum(ImageStat.Stat(diff).sum2) / (3 * a.width * a.height)
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def quality_table(images: dict[str, Image.Image]) -> None:
    """PSNR of the stored WebP against the same-size LANCZOS downscale of the original."""
    print("\n### Fidelity at 720 px: PSNR (dB) of the stored image vs the exact downscale\n")
    names = list(images)
    print("| quality | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for q in (70, 75, 80, 85, 90):
        cells = []
        for im in images.values():
            prep = prepare(capture(im), ScreenshotOptions(quality=q))
            ref = im.resize((prep.width, prep.height), Image.Resampling.LANCZOS)
            cells.append(f"{psnr(Image.open(io.BytesIO(prep.data)), ref):.1f}")
        print(f"| q{q} | " + " | ".join(cells) + " |")


def resample_table(image: Image.Image, runs: int) -> None:
    print("\n### Downscale 1080x2400 -> 720x1600, one screen (CPU ms, median)\n")
    print("| filter | ms |")
    print("|---|---|")
    for label, kwargs in (
        ("LANCZOS (used)", {"resample": Image.Resampling.LANCZOS}),
        ("LANCZOS reducing_gap=1.5", {"resample": Image.Resampling.LANCZOS, "reducing_gap": 1.5}),
        ("BICUBIC", {"resample": Image.Resampling.BICUBIC}),
        ("BILINEAR", {"resample": Image.Resampling.BILINEAR}),
    ):
        ms = median_ms(lambda kwargs=kwargs: image.resize((720, 1600), **kwargs), runs * 3)
        print(f"| {label} | {ms:.1f} |")


def capture_table(png: bytes, image: Image.Image) -> None:
    b64 = base64.b64encode(png).decode()
    sources: list[tuple[str, object]] = [
        ("bytes (PNG, by reference)", png),
        ("str path", "/tmp/screen.png"),
        ("pathlib.Path", Path("/tmp/screen.png")),
        ("base64 str", b64),
        ("data: URL", "data:image/png;base64," + b64),
        (f"bytearray ({kb(len(png))} KB, copied)", bytearray(png)),
        ("memoryview (copied)", memoryview(png)),
        ("PIL image (by reference)", image),
    ]
    print("\n### Caller-thread cost of capture() (microseconds, median of 5 x 20000 calls)\n")
    print("| source | µs per call |")
    print("|---|---|")
    for label, source in sources:
        n = 20000 if "copied" not in label else 500
        per_call = []
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                capture(source)
            per_call.append((time.perf_counter_ns() - t0) / n / 1000)
        print(f"| {label} | {statistics.median(per_call):.2f} |")
    copy_ms = median_ms(image.copy, 20)
    print(f"| PIL image with copy=True | {copy_ms * 1000:.0f} |")


def stall_table(pngs: dict[str, bytes]) -> None:
    """How long can a worker's prepare() keep the agent thread from running (GIL held)?"""
    print("\n### Agent-thread stalls while a worker thread runs prepare() (default options)\n")
    print("| screen | prepare ms | agent thread: longest gap between 1 ms sleeps (ms) | p99 gap (ms) |")
    print("|---|---|---|---|")
    for name, png in pngs.items():
        ref = capture(png)
        gaps: list[float] = []
        done = threading.Event()

        def work(ref=ref, done=done) -> None:
            prepare(ref, DEFAULT)
            done.set()

        worker = threading.Thread(target=work)
        t0 = time.perf_counter()
        worker.start()
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append((now - last) * 1000)
            last = now
        worker.join()
        total = (time.perf_counter() - t0) * 1000
        gaps.sort()
        p99 = gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))]
        print(f"| {name} | {total:.0f} | {gaps[-1]:.1f} | {p99:.1f} |")


def record_step_table(pngs: dict[str, bytes], images: dict[str, Image.Image], bursts: int) -> None:
    """Caller-thread cost of StepTracker.record_step(..., screenshot=...) in local mode.

    Bursts of 10 steps (an agent takes a screenshot every few seconds; a burst is the worst
    case), then a flush that is not timed. The worker encodes in the background meanwhile, so
    the numbers include any wait for the GIL it holds.
    """
    from stepsdk import StepTracker

    tmp = Path(tempfile.mkdtemp(prefix="bench-shots-"))
    path = tmp / "gallery.png"
    path.write_bytes(pngs["gallery"])
    b64 = base64.b64encode(pngs["gallery"]).decode()
    sources: list[tuple[str, object]] = [
        ("no screenshot", None),
        ("PNG bytes (1.7 MB)", pngs["gallery"]),
        ("base64 str (PhoneAgent)", b64),
        ("data: URL", "data:image/png;base64," + b64),
        ("path", path),
        ("PIL image", images["gallery"]),
    ]
    print("\n### Caller-thread cost of record_step(..., screenshot=...) (µs, local mode, worker busy)\n")
    print("| screenshot | median µs | p99 µs | max µs | worker prepare per step (ms wall) |")
    print("|---|---|---|---|---|")
    try:
        for label, source in sources:
            with StepTracker(title="bench", supabase_url="", backup_dir=tmp / "backup") as tracker:
                costs: list[float] = []
                drain: list[float] = []
                for _ in range(bursts):
                    for i in range(10):
                        t0 = time.perf_counter_ns()
                        tracker.record_step("screenshot", {"i": i}, screenshot=source)
                        costs.append((time.perf_counter_ns() - t0) / 1000)
                    t0 = time.perf_counter()
                    tracker.flush(timeout=60)
                    drain.append((time.perf_counter() - t0) * 1000 / 10)
            costs.sort()
            p99 = costs[min(len(costs) - 1, int(len(costs) * 0.99))]
            worker = f"{statistics.median(drain):.0f}" if source is not None else "-"
            print(f"| {label} | {statistics.median(costs):.1f} | {p99:.1f} | {costs[-1]:.1f} | {worker} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--bursts", type=int, default=3, help="bursts of 10 record_step calls per source")
    parser.add_argument(
        "--only", choices=("settings", "quality", "capture", "record"), help="run one table only"
    )
    args = parser.parse_args()
    gc.disable()  # keep collector pauses out of microsecond timings
    images = {name: fn() for name, fn in SCREENS.items()}
    pngs = {name: png_bytes(im) for name, im in images.items()}
    print("## Screens (1080x2400, PNG as `adb screencap -p` writes it)\n")
    print("| screen | PNG KB |")
    print("|---|---|")
    for name, png in pngs.items():
        print(f"| {name} | {kb(len(png))} |")
    if args.only in (None, "settings"):
        settings_table(pngs, args.runs)
        resample_table(images["gallery"], args.runs)
    if args.only in (None, "quality"):
        quality_table(images)
    if args.only in (None, "capture"):
        capture_table(pngs["gallery"], images["gallery"])
        stall_table(pngs)
    gc.enable()
    if args.only in (None, "record"):
        record_step_table(pngs, images, args.bursts)


if __name__ == "__main__":
    main()
