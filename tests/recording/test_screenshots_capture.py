"""capture(): the caller-thread half. Type checks only, no I/O, no decoding, microseconds."""

from __future__ import annotations

import base64
import builtins
import io
import os
import pathlib
import time
from typing import Any

import pytest
from PIL import Image, ImageDraw

from stepsdk.recording.screenshots import ScreenshotError, ScreenshotInput, capture, prepare
from tests.fixtures_images import encode, png_bytes, small_screen


@pytest.fixture
def png() -> bytes:
    return png_bytes(small_screen())


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda p: p, "bytes"),
        (lambda p: bytearray(p), "bytes"),
        (lambda p: memoryview(p), "bytes"),
        (lambda p: base64.b64encode(p).decode(), "text"),
        (lambda p: "data:image/png;base64," + base64.b64encode(p).decode(), "text"),
        (lambda p: "/some/screen.png", "text"),
        (lambda p: pathlib.Path("/some/screen.png"), "path"),
        (lambda p: small_screen(), "image"),
    ],
    ids=["bytes", "bytearray", "memoryview", "base64", "data_url", "str_path", "pathlib", "pil"],
)
def test_each_accepted_type_gives_an_input(png: bytes, make: Any, kind: str) -> None:
    ref = capture(make(png))
    assert isinstance(ref, ScreenshotInput)
    assert ref.kind == kind
    assert ref.sensitive is None


@pytest.mark.parametrize("bad", [42, 4.2, None, True, {"png": b""}, [b"\x89PNG"], object(), (b"x",)])
def test_wrong_type_raises_type_error_at_the_call(bad: object) -> None:
    with pytest.raises(TypeError, match="screenshot must be a path"):
        capture(bad)


@pytest.mark.parametrize("flag", ["yes", 1, 0, [], "true"])
def test_sensitive_must_be_bool(png: bytes, flag: object) -> None:
    with pytest.raises(TypeError, match="sensitive must be a bool"):
        capture(png, sensitive=flag)  # type: ignore[arg-type]


def test_copy_must_be_bool(png: bytes) -> None:
    with pytest.raises(TypeError, match="copy must be a bool"):
        capture(png, copy="no")  # type: ignore[arg-type]


def test_bytes_are_kept_by_reference(png: bytes) -> None:
    assert capture(png).payload is png


def test_bytearray_is_copied_so_later_mutation_changes_nothing(png: bytes) -> None:
    buf = bytearray(png)
    ref = capture(buf)
    buf[:] = b"\x00" * len(buf)  # the agent reuses its buffer for the next frame
    assert prepare(ref).sha256 == prepare(capture(png)).sha256


def test_memoryview_is_copied_so_later_mutation_changes_nothing(png: bytes) -> None:
    buf = bytearray(png)
    ref = capture(memoryview(buf))
    buf[:8] = b"garbage!"
    assert prepare(ref).sha256 == prepare(capture(png)).sha256


def test_pil_image_by_reference_unless_copy_requested() -> None:
    im = small_screen()
    assert capture(im).payload is im
    copied = capture(im, copy=True)
    assert copied.payload is not im
    before = prepare(capture(im.copy())).sha256
    ImageDraw.Draw(im).rectangle((0, 0, 60, 60), fill=(255, 0, 0))  # caller draws on it afterwards
    assert prepare(copied).sha256 == before
    assert prepare(capture(im)).sha256 != before


def test_lazily_opened_file_image_is_captured_by_name_and_survives_close(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "shot.png"
    path.write_bytes(png_bytes(small_screen()))
    with Image.open(path) as im:
        ref = capture(im)  # not loaded yet: the with-block closes the file right after
    assert ref.kind == "path"
    assert ref.payload == str(path)
    assert prepare(ref).metadata["original_format"] == "PNG"


def test_lazily_opened_bytesio_image_is_captured_as_bytes() -> None:
    data = png_bytes(small_screen())
    with Image.open(io.BytesIO(data)) as im:
        ref = capture(im)
    assert ref.kind == "bytes"
    assert prepare(ref).sha256 == prepare(capture(data)).sha256


def test_closed_unloaded_image_fails_in_prepare_with_a_clear_reason() -> None:
    im = Image.open(io.BytesIO(png_bytes(small_screen())))
    im.close()
    ref = capture(im)
    with pytest.raises(ScreenshotError) as err:
        prepare(ref)
    assert err.value.reason == "unreadable"
    assert "im.load()" in err.value.message


def test_capture_does_no_io(monkeypatch: pytest.MonkeyPatch, png: bytes) -> None:
    """Every file-system entry point raises during capture: capture must not touch any."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("capture() did I/O")

    for name in ("stat", "lstat", "open", "listdir", "scandir", "access"):
        monkeypatch.setattr(os, name, forbidden)
    monkeypatch.setattr(os.path, "exists", forbidden)
    monkeypatch.setattr(os.path, "lexists", forbidden)
    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(io, "open", forbidden)
    sources: list[object] = ["/no/such/file.png", pathlib.Path("/no/such/file.png"), png, bytearray(png)]
    sources.append("data:image/png;base64," + base64.b64encode(png).decode())
    for source in sources:
        capture(source)
    monkeypatch.undo()


def test_missing_path_is_accepted_by_capture_and_reported_by_prepare(tmp_path: pathlib.Path) -> None:
    ref = capture(tmp_path / "not-yet-written.png")
    with pytest.raises(ScreenshotError) as err:
        prepare(ref)
    assert err.value.reason == "not_found"


def test_capture_of_a_fifo_does_not_block(tmp_path: pathlib.Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    ref = capture(str(fifo))  # opening a FIFO for reading would block forever
    with pytest.raises(ScreenshotError) as err:
        prepare(ref)
    assert err.value.reason == "unreadable"


def test_capture_costs_microseconds(png: bytes) -> None:
    b64 = base64.b64encode(png).decode()
    im = small_screen()
    for source in (png, b64, "/tmp/x.png", im):
        n = 2000
        t0 = time.thread_time()
        for _ in range(n):
            capture(source)
        per_call_us = (time.thread_time() - t0) / n * 1e6
        # CPU time of this thread (a loaded machine does not inflate it): ~0.3-1 µs measured
        # (benchmarks/README.md); 50 µs fails if capture ever reads a file or decodes (milliseconds).
        assert per_call_us < 50, (type(source).__name__, per_call_us)


def test_sensitive_marker_reaches_metadata(png: bytes) -> None:
    assert prepare(capture(png, sensitive=True)).metadata["sensitive"] is True
    assert prepare(capture(png, sensitive=False)).metadata["sensitive"] is False
    assert "sensitive" not in prepare(capture(png)).metadata


def test_capturing_an_input_again_passes_it_through(png: bytes) -> None:
    ref = capture(png)
    assert capture(ref) is ref
    marked = capture(ref, sensitive=True)
    assert marked.sensitive is True and marked.payload is png
    assert ref.sensitive is None


def test_repr_never_contains_the_data(png: bytes) -> None:
    b64 = base64.b64encode(png).decode()
    text = repr(capture(b64, sensitive=True))
    assert b64[:40] not in text
    assert "sensitive=True" in text
    assert len(text) < 120


def test_jpeg_bytes_and_webp_bytes_capture_the_same_way() -> None:
    im = small_screen()
    for fmt in ("JPEG", "WEBP"):
        ref = capture(encode(im, fmt))
        assert ref.kind == "bytes"
        assert prepare(ref).metadata["original_format"] == fmt


def test_file_rewritten_after_capture_is_flagged(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "screen.png"
    path.write_bytes(png_bytes(small_screen(seed=1)))
    ref = capture(path)
    assert "file_changed_after_capture" not in prepare(ref).metadata
    later = time.time() + 5
    path.write_bytes(png_bytes(small_screen(seed=2)))  # the agent's next step reuses the name
    os.utime(path, (later, later))
    assert prepare(ref).metadata["file_changed_after_capture"] is True
