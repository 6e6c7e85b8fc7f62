"""Screenshots through the real pipeline: StepTracker -> worker -> supabase client -> local stack.

Every stored object is downloaded with the official client and decoded with Pillow; rows are
counted in PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from stepsdk import StepTracker
from stepsdk.config import Config
from stepsdk.ops.resync import Resync
from stepsdk.recording.screenshots import capture
from tests.fixtures_images import encode, png_bytes, small_screen
from tests.timing import WAIT

BUCKET = "step-screenshots"


def fast_config(stack: Any, tmp_path: Path) -> Config:
    # Short retry/probe times so an outage is noticed in a fraction of a second.
    return Config.resolve(
        stack.url, stack.service_role_key, tmp_path,
        probe_min=0.2, probe_max=1.0, retry_max_time=2.0, request_timeout=2.0, connect_timeout=1.0,
    )  # fmt: skip


def steps(stack: Any, task_id: str) -> list[dict[str, Any]]:
    return stack.sql("select * from public.task_steps where task_id = %s order by step_number", (task_id,))


def shots_by_step(stack: Any, task_id: str) -> dict[str, dict[str, Any]]:
    rows = stack.sql("select * from public.step_screenshots where task_id = %s", (task_id,))
    return {str(r["step_id"]): r for r in rows}


def object_names(stack: Any) -> list[str]:
    rows = stack.sql("select name from storage.objects where bucket_id = %s order by name", (BUCKET,))
    return [r["name"] for r in rows]


def download_and_check(stack: Any, row: dict[str, Any]) -> Image.Image:
    """The object exists, is a WebP, and matches its row (hash, size, dimensions)."""
    data = stack.client().storage.from_(BUCKET).download(row["screenshot_path"])
    sha = hashlib.sha256(data).hexdigest()
    assert row["file_hash"] == sha
    assert row["screenshot_path"] == f"{sha[:2]}/{sha}.webp"
    assert row["file_size"] == len(data)
    assert row["compressed"] is True
    im = Image.open(io.BytesIO(data))
    im.load()
    assert im.format == "WEBP"
    assert im.size == (row["metadata"]["width"], row["metadata"]["height"])
    return im


def distinct_screen(i: int) -> Image.Image:
    im = small_screen(seed=100 + i, size=(90, 160))
    ImageDraw.Draw(im).text((5, 5), str(i), fill=(0, 0, 0))
    return im


def test_every_kind_of_screenshot_is_stored_as_webp_with_its_row(stack: Any, tmp_path: Path) -> None:
    base = small_screen(size=(1000, 500))  # wider than 720: stored downscaled
    png = png_bytes(base)
    path = tmp_path / "input" / "shot.png"
    path.parent.mkdir()
    path.write_bytes(png_bytes(small_screen(seed=7)))
    rgba = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).ellipse((5, 5, 55, 35), fill=(250, 10, 10, 255))
    sources: dict[str, Any] = {
        "png_bytes": png,
        "jpeg_bytes": encode(small_screen(seed=8), "JPEG"),
        "base64": base64.b64encode(encode(small_screen(seed=9), "PNG")).decode(),
        "data_url": "data:image/png;base64,"
        + base64.b64encode(encode(small_screen(seed=10), "PNG")).decode(),
        "path": path,
        "pil_rgba": rgba,
        "sensitive": capture(encode(small_screen(seed=11), "PNG"), sensitive=True),
    }
    with StepTracker(
        title="kinds",
        supabase_url=stack.url,
        supabase_key=stack.service_role_key,
        backup_dir=tmp_path / "backup",
        # "store": a screen flagged sensitive is kept as WebP here (the default withholds or
        # encrypts it: tests/recording/test_sensitive_screens.py)
        screenshot_policy="store",
    ) as tracker:
        recorded = {
            name: tracker.record_step("screenshot", {"kind": name}, screenshot=src)
            for name, src in sources.items()
        }
        assert tracker.flush(timeout=WAIT).uploaded == len(sources)
    rows = {str(r["id"]): r for r in steps(stack, tracker.task_id)}
    shots = shots_by_step(stack, tracker.task_id)
    assert len(rows) == len(shots) == len(sources)
    for name, step in recorded.items():
        row, shot = rows[step.id], shots[step.id]
        assert row["screenshot_path"] == shot["screenshot_path"], name
        im = download_and_check(stack, shot)
        meta = shot["metadata"]
        assert meta["original_format"] == (
            "JPEG" if name == "jpeg_bytes" else "PIL" if name == "pil_rgba" else "PNG"
        )
        if name == "pil_rgba":
            assert im.mode == "RGBA" and meta["original_size"] is None
        if name == "png_bytes":
            assert (
                im.size == (720, 360) and meta["original_width"] == 1000 and meta["original_size"] == len(png)
            )
        assert meta.get("sensitive") is (True if name == "sensitive" else None)
    assert len(object_names(stack)) == len(sources)


def test_identical_screenshots_are_stored_once_with_one_row_per_step(stack: Any, tmp_path: Path) -> None:
    screen = small_screen(seed=3)
    same_pixels = [screen, png_bytes(screen), encode(screen, "BMP"), screen.copy()]
    with StepTracker(config=fast_config(stack, tmp_path)) as tracker:
        recorded = [
            tracker.record_step("screenshot", {"n": i}, screenshot=s) for i, s in enumerate(same_pixels)
        ]
        other = tracker.record_step("screenshot", {}, screenshot=small_screen(seed=4))
    shots = shots_by_step(stack, tracker.task_id)
    assert len(shots) == 5
    paths = {shots[s.id]["screenshot_path"] for s in recorded}
    assert len(paths) == 1
    assert shots[other.id]["screenshot_path"] not in paths
    assert object_names(stack) == sorted([*paths, shots[other.id]["screenshot_path"]])
    for shot in shots.values():
        download_and_check(stack, shot)


def test_bad_screenshots_give_recorded_steps_with_the_error(stack: Any, tmp_path: Path) -> None:
    bad = {
        "missing": tmp_path / "does-not-exist.png",
        "truncated": png_bytes(small_screen())[:200],
        "unsupported_format": b"%PDF-1.4 not an image",
        "invalid_base64": "data:image/png;base64,@@@@",
        "is_directory": tmp_path,
    }
    with StepTracker(config=fast_config(stack, tmp_path / "backup")) as tracker:
        recorded = {k: tracker.record_step("action", {"k": k}, screenshot=v) for k, v in bad.items()}
        good = tracker.record_step("action", {}, screenshot=small_screen())
    rows = {str(r["id"]): r for r in steps(stack, tracker.task_id)}
    assert len(rows) == len(bad) + 1  # no step lost because of its screenshot
    expected = {"missing": "not_found"}
    for key, step in recorded.items():
        row = rows[step.id]
        assert row["screenshot_path"] is None
        assert row["metadata"]["screenshot_error"]["reason"] == expected.get(key, key)
        assert row["step_data"] == {"k": key}
    assert rows[good.id]["screenshot_path"] is not None
    assert len(shots_by_step(stack, tracker.task_id)) == 1


def test_outage_during_uploads_then_resync_loses_nothing(stack: Any, tmp_path: Path) -> None:
    config = fast_config(stack, tmp_path)
    screens = [png_bytes(distinct_screen(i)) for i in range(6)]
    sources = screens + screens[:3]  # 9 steps, 6 distinct objects
    tracker = StepTracker(config=config, buffer_size=3, flush_interval=0.2)
    tracker.record_step("screenshot", {"before": True}, screenshot=screens[0])
    assert tracker.flush(timeout=WAIT).uploaded == 1
    with stack.faults.outage():
        for i, src in enumerate(sources):
            tracker.record_step("screenshot", {"i": i}, screenshot=src)
        result = tracker.close(timeout=WAIT)
        assert result.backed_up == len(sources) and result.pending == 0
    report = Resync(tmp_path, config).run()
    assert report.ok, report.to_dict()
    _check_complete(stack, tracker.task_id, steps_expected=10, objects_expected=6)
    again = Resync(tmp_path, config).run()  # exactly once: a second run changes nothing
    assert again.ok and not any(again.uploaded.values()), again.to_dict()
    _check_complete(stack, tracker.task_id, steps_expected=10, objects_expected=6)


def test_flaky_storage_uploads_are_retried_to_exactly_once(stack: Any, tmp_path: Path) -> None:
    stack.faults.fail_fraction("POST /storage/v1/object/*", 0.5, kinds=("500", "503", "reset"), seed=3, n=6)
    with StepTracker(config=fast_config(stack, tmp_path), buffer_size=4, flush_interval=0.2) as tracker:
        for i in range(8):
            tracker.record_step("screenshot", {"i": i}, screenshot=distinct_screen(i))
        deadline = time.monotonic() + 30
        while tracker.stats().uploaded < 8 and time.monotonic() < deadline:
            tracker.flush(timeout=5)
    assert stack.faults.injected, "the fault rule never fired: this test would prove nothing"
    if tracker.stats().uploaded < 8:  # whatever the tracker could not finish, resync must
        assert Resync(tmp_path, fast_config(stack, tmp_path)).run().ok
    _check_complete(stack, tracker.task_id, steps_expected=8, objects_expected=8)


def _check_complete(stack: Any, task_id: str, steps_expected: int, objects_expected: int) -> None:
    rows = steps(stack, task_id)
    assert len(rows) == steps_expected and len({r["id"] for r in rows}) == steps_expected
    shots = shots_by_step(stack, task_id)
    assert len(shots) == steps_expected  # one screenshot row per step, none duplicated
    assert (
        len(stack.sql("select id from public.step_screenshots where task_id = %s", (task_id,)))
        == steps_expected
    )
    names = object_names(stack)
    assert len(names) == objects_expected
    for row in rows:
        shot = shots[str(row["id"])]
        assert row["screenshot_path"] == shot["screenshot_path"] in names
    for name in names:
        download_and_check(stack, next(s for s in shots.values() if s["screenshot_path"] == name))


def test_upload_committed_but_answered_500_is_not_stored_twice(stack: Any, tmp_path: Path) -> None:
    # The object is written, then the client sees a 500 and uploads again: that second upload
    # must count as done (the key is the content), with one object and one row per step.
    stack.faults.commit_then_fail_next("POST /storage/v1/object/*", n=2)
    with StepTracker(config=fast_config(stack, tmp_path), buffer_size=2, flush_interval=0.2) as tracker:
        for i in range(3):
            tracker.record_step("screenshot", {"i": i}, screenshot=distinct_screen(i))
    assert stack.faults.injected.get("commit_then_fail") == 2
    # Two 500s in a row may trip the tracker's breaker before close(): what it kept in the
    # backup is uploaded by resync, and the already-stored object must not be duplicated.
    if tracker.stats().uploaded < 3:
        assert Resync(tmp_path, fast_config(stack, tmp_path)).run().ok
    _check_complete(stack, tracker.task_id, steps_expected=3, objects_expected=3)


def test_same_screen_in_two_tasks_is_one_object_with_a_row_in_each(stack: Any, tmp_path: Path) -> None:
    screen = png_bytes(distinct_screen(42))
    task_ids = []
    for name in ("first", "second"):
        with StepTracker(title=name, config=fast_config(stack, tmp_path / name)) as tracker:
            tracker.record_step("screenshot", {}, screenshot=screen)
        task_ids.append(tracker.task_id)
    rows = [shots_by_step(stack, task_id) for task_id in task_ids]
    assert [len(r) for r in rows] == [1, 1]
    paths = {shot["screenshot_path"] for r in rows for shot in r.values()}
    assert len(paths) == 1 and object_names(stack) == sorted(paths)
