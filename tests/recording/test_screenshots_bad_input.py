"""Hostile and broken screenshots: each gets a defined ScreenshotError reason, never a crash."""

from __future__ import annotations

import base64
import io
import pathlib
import random

import pytest
from PIL import Image

from stepsdk.recording.screenshots import REASONS, ScreenshotError, ScreenshotOptions, capture, prepare
from tests.fixtures_images import encode, png_bytes, png_with_fake_size, small_screen


def reason_of(source: object, options: ScreenshotOptions | None = None) -> ScreenshotError:
    with pytest.raises(ScreenshotError) as err:
        prepare(capture(source), options)
    assert err.value.reason in REASONS
    assert err.value.message
    return err.value


@pytest.fixture(scope="module")
def png() -> bytes:
    return png_bytes(small_screen())


# --- empty / missing -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [b"", bytearray(), memoryview(b""), "", "   \n"])
def test_empty_inputs(source: object) -> None:
    assert reason_of(source).reason == "empty"


def test_zero_byte_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    assert reason_of(path).reason == "empty"


def test_missing_paths(tmp_path: pathlib.Path) -> None:
    assert reason_of(tmp_path / "nope.png").reason == "not_found"
    assert reason_of(str(tmp_path / "no-dir" / "nope.png")).reason == "not_found"
    err = reason_of("relative/shot.png")
    assert err.reason == "not_found" and "relative/shot.png" in err.message


def test_path_through_a_file_is_not_found(tmp_path: pathlib.Path, png: bytes) -> None:
    (tmp_path / "f.png").write_bytes(png)
    assert reason_of(tmp_path / "f.png" / "inner.png").reason == "not_found"


def test_directory(tmp_path: pathlib.Path) -> None:
    assert reason_of(tmp_path).reason == "is_directory"
    assert reason_of(str(tmp_path)).reason == "is_directory"


def test_nul_byte_in_path() -> None:
    # Not an existing path and not base64: a clear not_found, no ValueError from the OS layer.
    assert reason_of("/tmp/a\x00b.png").reason == "not_found"
    assert reason_of(pathlib.PurePosixPath("/tmp/a\x00b.png")).reason in {"unreadable", "not_found"}


def test_dangling_symlink(tmp_path: pathlib.Path) -> None:
    link = tmp_path / "link.png"
    link.symlink_to(tmp_path / "gone.png")
    assert reason_of(link).reason == "not_found"
    assert reason_of(str(link)).reason == "not_found"


def test_device_file_is_refused_without_reading() -> None:
    assert reason_of("/dev/zero").reason == "unreadable"  # would never end if read


# --- corrupt / truncated ------------------------------------------------------------------------------


def test_random_bytes_are_unsupported() -> None:
    err = reason_of(bytes(random.Random(1).randrange(256) for _ in range(500)))
    assert err.reason == "unsupported_format"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_valid_signature_then_garbage_is_corrupt(fmt: str, png: bytes) -> None:
    good = encode(small_screen(), fmt)
    head = 12 if fmt == "WEBP" else 8
    bad = good[:head] + bytes(random.Random(2).randrange(256) for _ in range(300))
    assert reason_of(bad).reason in {"corrupt", "truncated"}


def test_truncated_png_and_jpeg(png: bytes) -> None:
    assert reason_of(png[: len(png) // 2]).reason == "truncated"
    jpeg = encode(small_screen(), "JPEG")
    assert reason_of(jpeg[: len(jpeg) // 2]).reason == "truncated"


def test_png_with_flipped_bits_in_the_data(png: bytes) -> None:
    bad = bytearray(png)
    start = png.index(b"IDAT") + 20
    for i in range(start, start + 40):
        bad[i] ^= 0xFF
    assert reason_of(bytes(bad)).reason in {"corrupt", "truncated"}


def test_png_header_with_zero_size() -> None:
    assert reason_of(png_with_fake_size(0, 10)).reason == "corrupt"  # Pillow refuses the header


@pytest.mark.parametrize("size", [(0, 0), (0, 5), (5, 0)])
def test_pil_image_without_pixels(size: tuple[int, int]) -> None:
    err = reason_of(Image.new("RGB", size))
    assert err.reason == "empty" and "no pixels" in err.message


# --- unsupported formats --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",  # Pillow would run Ghostscript
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
        b"just some text, not an image at all\n" * 3,
        b"8BPS\x00\x01" + b"\x00" * 40,  # Photoshop: Pillow reads it, we do not
        b"PK\x03\x04" + b"\x00" * 40,  # a zip
        encode(small_screen(size=(8, 8)), "TIFF"),  # decodable by Pillow, but not a screenshot format
        encode(small_screen(size=(8, 8)), "ICO"),
    ],
    ids=["pdf", "eps", "svg", "text", "psd", "zip", "tiff", "ico"],
)
def test_unsupported_formats(data: bytes) -> None:
    err = reason_of(data)
    assert err.reason == "unsupported_format"
    assert "PNG" in err.message  # says what is supported


def test_text_file_path(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    err = reason_of(path)
    assert err.reason == "unsupported_format" and "text" in err.message


def test_pdf_message_names_it() -> None:
    assert "PDF" in reason_of(b"%PDF-1.4 fake").message


# --- size limits ----------------------------------------------------------------------------------------


def test_decompression_bomb_header_beyond_pillows_own_limit() -> None:
    bomb = png_with_fake_size(100_000, 100_000)
    assert len(bomb) < 200
    assert reason_of(bomb).reason == "decompression_bomb"


def test_decompression_bomb_over_our_limit() -> None:
    err = reason_of(png_with_fake_size(8000, 8000))  # 64 MP: under Pillow's error level, over ours (50 MP)
    assert err.reason == "decompression_bomb" and "8000x8000" in err.message


def test_tiny_pixel_limit_in_options(png: bytes) -> None:
    small = ScreenshotOptions(max_pixels=100)
    assert reason_of(png, small).reason == "decompression_bomb"
    assert reason_of(small_screen(), small).reason == "decompression_bomb"  # caller images too


def test_input_byte_limit(tmp_path: pathlib.Path, png: bytes) -> None:
    limit = ScreenshotOptions(max_input_bytes=100)
    assert reason_of(png, limit).reason == "too_large"
    path = tmp_path / "big.png"
    path.write_bytes(png)
    assert reason_of(path, limit).reason == "too_large"
    assert reason_of(base64.b64encode(png).decode(), limit).reason == "too_large"
    assert reason_of("data:image/png;base64," + base64.b64encode(png).decode(), limit).reason == "too_large"
    # Not even valid base64 (the trailing '!'): too_large, not invalid_base64, proves the text
    # is measured before anything is decoded.
    huge = "QUFB" * 300_000 + "!"
    assert reason_of(huge, ScreenshotOptions(max_input_bytes=1000)).reason == "too_large"


# --- base64 / data URLs -------------------------------------------------------------------------------


def test_invalid_base64() -> None:
    assert reason_of("A" * 65).reason == "invalid_base64"  # looks like base64, bad length
    assert reason_of("!!" + "A" * 5000).reason == "invalid_base64"  # too long for a path, not base64
    assert reason_of("data:image/png;base64,@@@not-base64@@@").reason == "invalid_base64"
    assert reason_of("data:image/png;base64").reason == "invalid_base64"  # no comma


def test_base64_of_a_non_image() -> None:
    text = base64.b64encode(b"hello world, this is not a picture " * 200).decode()
    assert reason_of(text).reason == "unsupported_format"


def test_short_base64_like_text_is_treated_as_a_missing_path() -> None:
    assert reason_of("aGVsbG8=").reason == "not_found"  # "hello": no image signature


def test_base64_of_a_truncated_png(png: bytes) -> None:
    assert reason_of(base64.b64encode(png[:300]).decode()).reason == "truncated"


def test_error_messages_never_contain_the_payload(png: bytes) -> None:
    secret = base64.b64encode(b"SECRET-TOKEN-" * 400).decode()
    for source in (secret, "data:image/png;base64," + secret, "data:image/png;base64,#" + secret):
        err = reason_of(source)
        assert secret[:32] not in str(err) and len(str(err)) < 500


def test_long_paths_are_shortened_in_messages() -> None:
    err = reason_of("/tmp/" + "x" * 3000 + ".png")
    assert err.reason == "not_found" and len(err.message) < 500


# --- the error type ------------------------------------------------------------------------------------


def test_screenshot_error_shape() -> None:
    err = ScreenshotError("corrupt", "bad data")
    assert err.to_dict() == {"reason": "corrupt", "message": "bad data"}
    assert str(err) == "corrupt: bad data"
    with pytest.raises(ValueError, match="unknown ScreenshotError reason"):
        ScreenshotError("oops", "x")


# --- fuzzing: damaged files of every format only ever give ScreenshotError ------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_mutated_files_give_webp_or_screenshot_error(fmt: str) -> None:
    rng = random.Random(fmt)
    good = encode(small_screen(size=(32, 48)), fmt)
    outcomes: dict[str, int] = {}
    for _ in range(120):
        bad = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            if not bad:
                break
            action = rng.randrange(3)
            pos = rng.randrange(len(bad))
            if action == 0:
                bad[pos] = rng.randrange(256)
            elif action == 1:
                del bad[pos:]
            else:
                bad[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
        try:
            prep = prepare(capture(bytes(bad)), ScreenshotOptions(max_pixels=4_000_000))
        except ScreenshotError as exc:
            outcomes[exc.reason] = outcomes.get(exc.reason, 0) + 1
            continue
        im = Image.open(io.BytesIO(prep.data))
        assert im.format == "WEBP" and im.size == (prep.width, prep.height)
        outcomes["ok"] = outcomes.get("ok", 0) + 1
    assert sum(outcomes.values()) == 120
    assert set(outcomes) - {"ok"}, outcomes  # some mutations must have been caught as errors
