"""prepare(): every input kind and image mode becomes a valid, content-addressed WebP."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pathlib
import re
import threading
import urllib.parse

import pytest
from PIL import Image, ImageChops, ImageDraw

from stepsdk.recording.screenshots import (
    PreparedScreenshot,
    ScreenshotOptions,
    capture,
    flat_fraction,
    prepare,
    read_webp_size,
    target_size,
)
from tests.fixtures_images import encode, font, png_bytes, small_screen

KEY_RE = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{64})\.webp$")


def decode(prep: PreparedScreenshot) -> Image.Image:
    im = Image.open(io.BytesIO(prep.data))
    im.load()
    return im


def check_webp(prep: PreparedScreenshot, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    im = decode(prep)
    assert im.format == "WEBP"
    assert im.size == size == (prep.width, prep.height)
    assert im.mode == mode
    assert prep.file_size == len(prep.data) > 0
    assert prep.sha256 == hashlib.sha256(prep.data).hexdigest()
    match = KEY_RE.match(prep.screenshot_path)
    assert match and match.group(1) == prep.sha256[:2] and match.group(2) == prep.sha256
    return im


@pytest.fixture(scope="module")
def screen() -> Image.Image:
    return small_screen()


# --- input kinds -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_encoded_bytes_of_each_format(screen: Image.Image, fmt: str) -> None:
    data = encode(screen, fmt)
    prep = prepare(capture(data))
    check_webp(prep, screen.size)
    assert prep.metadata["original_format"] == fmt
    assert prep.metadata["original_size"] == len(data)
    assert prep.metadata["source"] == "bytes"


def test_path_str_and_pathlib(tmp_path: pathlib.Path, screen: Image.Image) -> None:
    data = png_bytes(screen)
    path = tmp_path / "shot.png"
    path.write_bytes(data)
    expected = prepare(capture(data)).sha256
    for source in (str(path), path):
        prep = prepare(capture(source))
        check_webp(prep, screen.size)
        assert prep.sha256 == expected
        assert prep.metadata["source"] == "path"
        assert prep.metadata["original_size"] == len(data)


def test_relative_path(tmp_path: pathlib.Path, screen: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s.png").write_bytes(png_bytes(screen))
    monkeypatch.chdir(tmp_path)
    assert prepare(capture("s.png")).metadata["source"] == "path"


@pytest.mark.parametrize(
    "wrap",
    [
        lambda b: base64.b64encode(b).decode(),
        lambda b: base64.encodebytes(b).decode(),  # wrapped at 76 columns, trailing newline
        lambda b: base64.b64encode(b).decode().rstrip("="),  # padding stripped
        lambda b: base64.urlsafe_b64encode(b).decode(),
        lambda b: "  " + base64.b64encode(b).decode() + "\n",
    ],
    ids=["plain", "wrapped", "no_padding", "urlsafe", "whitespace"],
)
def test_base64_text(screen: Image.Image, wrap: object) -> None:
    data = png_bytes(screen)
    prep = prepare(capture(wrap(data)))  # type: ignore[operator]
    assert prep.metadata["source"] == "base64"
    assert prep.sha256 == prepare(capture(data)).sha256


def test_data_urls(screen: Image.Image) -> None:
    data = png_bytes(screen)
    expected = prepare(capture(data)).sha256
    b64 = base64.b64encode(data).decode()
    for url in (
        "data:image/png;base64," + b64,  # what PhoneAgent puts in its messages
        "data:;base64," + b64,
        "data:image/png;BASE64," + b64,
        "data:image/png," + urllib.parse.quote_from_bytes(data),  # percent-encoded, no base64
    ):
        prep = prepare(capture(url))
        assert prep.metadata["source"] == "data_url"
        assert prep.sha256 == expected


def test_tiny_base64_png_is_data_not_a_path() -> None:
    one = encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")
    text = base64.b64encode(one).decode()
    assert len(text) < 200  # shorter than many paths: told apart by the PNG signature
    prep = prepare(capture(text))
    check_webp(prep, (1, 1))


# --- modes ---------------------------------------------------------------------------------------


def _alpha_image() -> Image.Image:
    im = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((5, 5, 35, 25), fill=(200, 30, 30, 255))
    return im


@pytest.mark.parametrize(
    ("make", "mode"),
    [
        (lambda: small_screen(size=(40, 30)), "RGB"),
        (_alpha_image, "RGBA"),
        (lambda: small_screen(size=(40, 30)).convert("RGBA"), "RGB"),  # opaque alpha is dropped
        (lambda: small_screen(size=(40, 30)).convert("P"), "RGB"),
        (lambda: _alpha_image().convert("P"), "RGBA"),  # palette with a transparent index
        (lambda: small_screen(size=(40, 30)).convert("L"), "RGB"),
        (lambda: _alpha_image().convert("LA"), "RGBA"),
        (lambda: small_screen(size=(40, 30)).convert("CMYK"), "RGB"),
        (lambda: small_screen(size=(40, 30)).convert("1"), "RGB"),
        (lambda: small_screen(size=(40, 30)).convert("YCbCr"), "RGB"),
        (lambda: Image.new("I;16", (40, 30), 40000), "RGB"),
        (lambda: Image.new("I;16B", (40, 30), 40000), "RGB"),
        (lambda: _alpha_image().convert("LA").convert("La"), "RGBA"),
        (lambda: small_screen(size=(40, 30)).convert("LAB"), "RGB"),
        (lambda: small_screen(size=(40, 30)).convert("HSV"), "RGB"),
        (lambda: small_screen(size=(40, 30)).convert("RGBX"), "RGB"),
        (lambda: _alpha_image().convert("RGBa"), "RGBA"),
        (lambda: _alpha_image().convert("PA"), "RGBA"),
        (lambda: Image.linear_gradient("L").resize((40, 30)).convert("I"), "RGB"),
        (lambda: Image.linear_gradient("L").resize((40, 30)).convert("F"), "RGB"),
    ],
    ids=[
        *("RGB", "RGBA", "RGBA-opaque", "P", "P-transparent", "L", "LA", "CMYK", "1", "YCbCr", "I;16"),
        *("I;16B", "La", "LAB", "HSV", "RGBX", "RGBa", "PA", "I", "F"),
    ],
)
def test_pil_modes(make: object, mode: str) -> None:
    im = make()  # type: ignore[operator]
    original_mode = im.mode
    prep = prepare(capture(im))
    check_webp(prep, (40, 30), mode)
    assert prep.metadata["original_format"] == "PIL"
    assert prep.metadata["original_size"] is None
    assert im.mode == original_mode  # the caller's image is never converted in place


def test_alpha_survives() -> None:
    out = decode(prepare(capture(_alpha_image()), ScreenshotOptions(encoding="lossless")))
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((20, 15))[3] == 255


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_sixteen_bit_grey_keeps_the_top_byte(mode: str) -> None:
    out = decode(prepare(capture(Image.new(mode, (8, 8), 40000)), ScreenshotOptions(encoding="lossless")))
    assert out.getpixel((4, 4)) == (156, 156, 156)  # 40000 / 256, not clipped to 255


def test_sixteen_bit_png_file(tmp_path: pathlib.Path) -> None:
    im = Image.new("I;16", (30, 20), 1000)
    path = tmp_path / "deep.png"
    im.save(path)
    prep = prepare(capture(path))
    check_webp(prep, (30, 20))


def test_cmyk_jpeg_and_progressive_jpeg(screen: Image.Image) -> None:
    for data in (encode(screen.convert("CMYK"), "JPEG"), encode(screen, "JPEG", progressive=True)):
        check_webp(prepare(capture(data)), screen.size)


def test_animated_gif_keeps_the_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), color) for color in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    out = decode(prepare(capture(buf.getvalue()), ScreenshotOptions(encoding="lossless")))
    assert out.getpixel((10, 10)) == (255, 0, 0)
    assert getattr(out, "n_frames", 1) == 1


def test_exif_orientation_is_applied_and_exif_is_not_stored() -> None:
    im = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when displaying
    exif[0x010F] = "SecretPhoneMaker"  # Make: must not leak into the stored object
    data = encode(im, "JPEG", exif=exif.tobytes())
    prep = prepare(capture(data))
    out = check_webp(prep, (20, 40))
    assert prep.metadata["original_width"] == 40 and prep.metadata["original_height"] == 20
    assert b"SecretPhoneMaker" not in prep.data
    assert not out.info.get("exif")


def test_icc_profile_is_not_stored(screen: Image.Image) -> None:
    data = encode(screen, "PNG", icc_profile=b"fake-icc-profile-bytes" * 10)
    assert b"fake-icc" not in prepare(capture(data)).data


# --- size ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "max_width", "expected"),
    [
        ((1080, 2400), 720, (720, 1600)),
        ((1080, 2400), 540, (540, 1200)),
        ((1080, 2400), None, (1080, 2400)),
        ((720, 1600), 720, (720, 1600)),
        ((500, 900), 720, (500, 900)),  # never upscaled
        ((1000, 333), 720, (720, 240)),  # 239.76 rounds to 240
        ((2400, 1080), 720, (720, 324)),  # landscape tablet/browser
        ((10000, 3), 720, (720, 1)),  # never 0 px
        ((1, 1), 720, (1, 1)),
        ((100, 20000), 720, (82, 16383)),  # WebP's 16383 px limit, aspect kept
        ((20000, 100), None, (16383, 82)),
    ],
)
def test_target_size(size: tuple[int, int], max_width: int | None, expected: tuple[int, int]) -> None:
    assert target_size(size, max_width) == expected


def test_downscale_keeps_aspect_and_content() -> None:
    im = Image.new("RGB", (1080, 2400), (255, 255, 255))
    ImageDraw.Draw(im).rectangle((0, 0, 539, 1199), fill=(0, 0, 200))  # top-left quarter blue
    prep = prepare(capture(im))
    out = check_webp(prep, (720, 1600))
    assert prep.metadata["original_width"] == 1080 and prep.metadata["original_height"] == 2400
    r, g, b = out.getpixel((180, 400))
    assert b > 150 and r < 60  # still blue where it was blue
    assert min(out.getpixel((540, 1200))) > 200  # still white where it was white


def test_full_size_option_and_one_pixel() -> None:
    im = small_screen(size=(900, 300))
    check_webp(prepare(capture(im), ScreenshotOptions(max_width=None)), (900, 300))
    check_webp(prepare(capture(Image.new("RGB", (1, 1), (1, 2, 3)))), (1, 1))


def test_very_tall_page_fits_webp_limits() -> None:
    tall = Image.new("RGB", (60, 17000), (250, 250, 250))
    for encoding in ("lossy", "lossless", "auto"):
        prep = prepare(capture(tall), ScreenshotOptions(encoding=encoding))  # type: ignore[arg-type]
        check_webp(prep, (58, 16383))


# --- content addressing ------------------------------------------------------------------------


def test_same_pixels_same_key_whatever_the_container(screen: Image.Image) -> None:
    keys = {
        prepare(capture(source)).screenshot_path
        for source in (
            screen,
            screen.copy(),
            png_bytes(screen),
            encode(screen, "BMP"),
            encode(screen, "WEBP", lossless=True),
        )
    }
    assert len(keys) == 1


def test_identical_screenshot_twice_same_key_different_screen_different_key(screen: Image.Image) -> None:
    data = png_bytes(screen)
    first, second = prepare(capture(data)), prepare(capture(data))
    assert first.screenshot_path == second.screenshot_path and first.data == second.data
    other = small_screen(seed=99)
    assert prepare(capture(other)).screenshot_path != first.screenshot_path
    one_pixel_changed = screen.copy()
    one_pixel_changed.putpixel((3, 3), (255, 0, 255))
    assert prepare(capture(one_pixel_changed), ScreenshotOptions(encoding="lossless")).sha256 != (
        prepare(capture(screen), ScreenshotOptions(encoding="lossless")).sha256
    )


def test_settings_change_the_key(screen: Image.Image) -> None:
    paths = {
        prepare(capture(screen), opts).screenshot_path
        for opts in (
            ScreenshotOptions(),
            ScreenshotOptions(quality=50),
            ScreenshotOptions(encoding="lossless"),
        )
    }
    assert len(paths) == 3


def test_concurrent_prepare_is_deterministic(screen: Image.Image) -> None:
    ref = capture(png_bytes(screen))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(prepare(ref).sha256)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1


# --- metadata and encodings ----------------------------------------------------------------------


def test_metadata_contents_are_json(screen: Image.Image) -> None:
    data = png_bytes(screen)
    prep = prepare(capture(data, sensitive=True))
    meta = json.loads(json.dumps(prep.metadata))
    assert meta["width"] == prep.width == screen.width
    assert meta["height"] == prep.height == screen.height
    assert meta["original_format"] == "PNG"
    assert meta["original_size"] == len(data)
    assert meta["original_width"] == screen.width and meta["original_height"] == screen.height
    assert meta["quality"] == 80 and meta["method"] == 4 and meta["encoding"] == "lossy"
    assert meta["sensitive"] is True
    assert meta["source"] == "bytes"
    assert meta["prepare_ms"] >= 0
    assert prep.content_type == "image/webp"
    assert "RIFF" not in repr(prep) and not re.search(r"[(,] ?data=", repr(prep))  # no bytes in repr


def test_lossless_round_trips_exact_pixels(screen: Image.Image) -> None:
    prep = prepare(capture(screen), ScreenshotOptions(encoding="lossless"))
    out = check_webp(prep, screen.size)
    assert ImageChops.difference(out, screen).getbbox() is None
    assert prep.metadata["encoding"] == "lossless" and prep.metadata["quality"] is None


def _flat_ui(size: tuple[int, int] = (360, 800)) -> Image.Image:
    im = Image.new("RGB", size, (246, 246, 250))
    draw = ImageDraw.Draw(im)
    for row in range(12):
        draw.rectangle((0, row * 64, size[0], row * 64 + 2), fill=(220, 220, 225))
        draw.text((20, row * 64 + 18), f"Setting number {row}", font=font(22), fill=(20, 20, 20))
    return im


def _photo(size: tuple[int, int] = (360, 800)) -> Image.Image:
    return Image.merge("RGB", [Image.effect_noise(size, 40 + 10 * i) for i in range(3)])


def test_flat_fraction_tells_ui_from_photo() -> None:
    assert flat_fraction(_flat_ui()) > 0.98
    assert flat_fraction(_photo()) < 0.2
    assert flat_fraction(Image.new("RGB", (1, 1))) == 1.0


def test_auto_encoding_picks_lossless_for_flat_ui_and_lossy_for_photos() -> None:
    auto = ScreenshotOptions(encoding="auto", max_width=180)
    ui = prepare(capture(_flat_ui()), auto)
    assert ui.metadata["encoding"] == "lossless" and (ui.width, ui.height) == (360, 800)
    assert ui.metadata["flat_fraction"] > 0.98
    photo = prepare(capture(_photo()), auto)
    assert photo.metadata["encoding"] == "lossy" and (photo.width, photo.height) == (180, 400)


def test_auto_falls_back_to_lossy_when_lossless_is_too_big_or_too_large() -> None:
    too_big = ScreenshotOptions(encoding="auto", max_width=180, lossless_max_bytes=100)
    assert prepare(capture(_flat_ui()), too_big).metadata["encoding"] == "lossy"
    too_many_pixels = ScreenshotOptions(encoding="auto", max_width=180, lossless_max_pixels=1000)
    assert prepare(capture(_flat_ui()), too_many_pixels).metadata["encoding"] == "lossy"


def test_read_webp_size(screen: Image.Image) -> None:
    prep = prepare(capture(screen))
    assert read_webp_size(prep.data) == screen.size
    assert read_webp_size(png_bytes(screen)) is None
    assert read_webp_size(b"RIFF\x00\x00\x00\x00WEBPjunk") is None


# --- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"quality": 101}, ValueError),
        ({"quality": -1}, ValueError),
        ({"quality": "80"}, TypeError),
        ({"method": 7}, ValueError),
        ({"method": 4.0}, TypeError),
        ({"max_width": 0}, ValueError),
        ({"max_width": True}, TypeError),
        ({"encoding": "jpeg"}, ValueError),
        ({"flat_threshold": 1.5}, ValueError),
        ({"flat_threshold": "high"}, TypeError),
        ({"max_pixels": 0}, ValueError),
        ({"max_input_bytes": None}, TypeError),
        ({"lossless_method": 9}, ValueError),
    ],
)
def test_bad_options_raise_at_construction(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        ScreenshotOptions(**kwargs)  # type: ignore[arg-type]


def test_prepare_argument_types() -> None:
    with pytest.raises(TypeError, match="ScreenshotInput"):
        prepare(b"\x89PNG")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ScreenshotOptions"):
        prepare(capture(b"x"), {"quality": 80})  # type: ignore[arg-type]
