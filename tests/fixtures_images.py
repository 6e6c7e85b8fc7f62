"""Realistic phone screenshots generated with Pillow (no binary fixtures in the repo).

Used by the screenshot tests and by ``benchmarks/bench_screenshots.py``. Every generator is
deterministic (seeded), so the same call gives the same pixels, which the hash tests rely on.

The screens imitate what ``adb screencap -p`` returns for a 1080x2400 phone: a status bar, an
app bar, text of several sizes, icons and buttons (flat UI compresses very well), and a
gallery/camera screen whose photo-like content (gradients, shapes, sensor noise) does not.
"""

from __future__ import annotations

import functools
import io
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

PHONE_SIZE = (1080, 2400)

_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts"))
_FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> _FontType:
    """DejaVu Sans when installed, else Pillow's scalable built-in font (Pillow >= 10.1)."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in _FONT_DIRS:
        for candidate in folder.rglob(name) if folder.is_dir() else ():
            return ImageFont.truetype(str(candidate), size)
    return ImageFont.load_default(size=size)


_WORDS = [
    "network",
    "wifi",
    "bluetooth",
    "display",
    "battery",
    "sound",
    "storage",
    "privacy",
    "location",
    "accounts",
    "message",
    "hello",
    "tomorrow",
    "meeting",
    "photo",
    "settings",
    "update",
    "search",
    "history",
    "download",
    "notifications",
    "security",
    "apps",
    "google",
    "system",
    "about",
    "phone",
    "connected",
    "devices",
    "mode",
]


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize()


def _status_bar(draw: ImageDraw.ImageDraw, width: int, dark: bool = False) -> None:
    fg = (255, 255, 255) if dark else (30, 30, 30)
    draw.text((48, 22), "12:45", font=font(38, bold=True), fill=fg)
    for i in range(4):  # signal bars
        h = 12 + i * 8
        draw.rectangle((width - 260 + i * 18, 62 - h, width - 248 + i * 18, 62), fill=fg)
    draw.rounded_rectangle((width - 150, 30, width - 70, 62), radius=6, outline=fg, width=3)
    draw.rectangle((width - 146, 34, width - 100, 58), fill=fg)


def _icon(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], color: tuple[int, int, int]) -> None:
    draw.ellipse(box, fill=color)
    x0, y0, x1, y1 = box
    inset = (x1 - x0) // 4
    draw.rounded_rectangle((x0 + inset, y0 + inset, x1 - inset, y1 - inset), radius=6, fill=(255, 255, 255))


def settings_screen(seed: int = 1, size: tuple[int, int] = PHONE_SIZE) -> Image.Image:
    """A settings list: grouped rows with icon, title, grey subtitle and a toggle."""
    rng = random.Random(seed)
    width, height = size
    im = Image.new("RGB", size, (246, 246, 250))
    draw = ImageDraw.Draw(im)
    _status_bar(draw, width)
    draw.text((48, 140), "Settings", font=font(84, bold=True), fill=(20, 20, 20))
    draw.rounded_rectangle((40, 280, width - 40, 400), radius=60, fill=(232, 232, 240))
    draw.text((120, 318), "Search settings", font=font(40), fill=(110, 110, 120))
    y = 460
    while y < height - 220:
        color = tuple(rng.randrange(40, 220) for _ in range(3))
        _icon(draw, (60, y + 20, 160, y + 120), color)  # type: ignore[arg-type]
        draw.text((200, y + 18), _sentence(rng, 2), font=font(46), fill=(25, 25, 25))
        draw.text((200, y + 80), _sentence(rng, 5), font=font(32), fill=(120, 120, 128))
        on = rng.random() < 0.5
        draw.rounded_rectangle(
            (width - 200, y + 45, width - 80, y + 105),
            radius=30,
            fill=(60, 120, 240) if on else (190, 190, 196),
        )
        knob = width - 135 if on else width - 195
        draw.ellipse((knob, y + 48, knob + 54, y + 102), fill=(255, 255, 255))
        draw.line((200, y + 150, width - 40, y + 150), fill=(225, 225, 230), width=2)
        y += 160
    _nav_bar(draw, width, height)
    return im


def _nav_bar(draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    draw.rectangle((0, height - 130, width, height), fill=(250, 250, 250))
    draw.rounded_rectangle(
        (width // 2 - 140, height - 60, width // 2 + 140, height - 48), radius=6, fill=(40, 40, 40)
    )


def list_screen(seed: int = 2, size: tuple[int, int] = PHONE_SIZE) -> Image.Image:
    """An app home screen: coloured app bar, cards with a thumbnail, title and text, a FAB."""
    rng = random.Random(seed)
    width, height = size
    im = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, width, 300), fill=(25, 118, 210))
    _status_bar(draw, width, dark=True)
    draw.text((48, 170), "Inbox", font=font(64, bold=True), fill=(255, 255, 255))
    y = 340
    while y < height - 300:
        draw.rounded_rectangle(
            (32, y, width - 32, y + 250), radius=28, fill=(248, 248, 252), outline=(222, 222, 230)
        )
        _paste_rounded(im, _photo(rng, (186, 186), noise=1.0), (64, y + 32), radius=20)
        draw.text((280, y + 36), _sentence(rng, 3), font=font(44, bold=True), fill=(30, 30, 30))
        for line in range(3):
            draw.text((280, y + 100 + line * 40), _sentence(rng, 6), font=font(28), fill=(100, 100, 110))
        y += 280
    draw.ellipse((width - 230, height - 420, width - 70, height - 260), fill=(255, 87, 34))
    draw.text((width - 172, height - 380), "+", font=font(80, bold=True), fill=(255, 255, 255))
    _nav_bar(draw, width, height)
    return im


def _paste_rounded(im: Image.Image, tile: Image.Image, at: tuple[int, int], radius: int) -> None:
    """Paste a photo tile with rounded corners (thumbnails, avatars)."""
    mask = Image.new("L", tile.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, tile.width - 1, tile.height - 1), radius=radius, fill=255)
    im.paste(tile, at, mask)


def feed_screen(seed: int = 6, size: tuple[int, int] = PHONE_SIZE) -> Image.Image:
    """A social/news feed: posts mixing a large photo with text (flat UI and photo together)."""
    rng = random.Random(seed)
    width, height = size
    im = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(im)
    _status_bar(draw, width)
    draw.text((48, 120), "Feed", font=font(64, bold=True), fill=(20, 20, 20))
    y = 240
    while y < height - 400:
        _paste_rounded(im, _photo(rng, (90, 90), noise=1.0), (40, y), radius=45)
        draw.text((150, y + 8), _sentence(rng, 2), font=font(38, bold=True), fill=(20, 20, 20))
        draw.text((150, y + 54), "2 h", font=font(28), fill=(130, 130, 130))
        photo_h = min(640, height - 300 - (y + 120))
        if photo_h > 100:
            im.paste(_photo(rng, (width, photo_h), noise=1.0), (0, y + 120))
        y += 140 + max(photo_h, 0)
        for line in range(2):
            draw.text((40, y + line * 44), _sentence(rng, 7), font=font(34), fill=(40, 40, 40))
        y += 140
    _nav_bar(draw, width, height)
    return im


def chat_screen(seed: int = 3, size: tuple[int, int] = PHONE_SIZE) -> Image.Image:
    """A messaging screen: alternating bubbles of wrapped text, an input bar with a keyboard."""
    rng = random.Random(seed)
    width, height = size
    im = Image.new("RGB", size, (236, 229, 221))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, width, 250), fill=(7, 94, 84))
    _status_bar(draw, width, dark=True)
    _paste_rounded(im, _photo(rng, (100, 100), noise=1.0), (40, 130), radius=50)
    draw.text((170, 150), "Alice Martin", font=font(48, bold=True), fill=(255, 255, 255))
    y = 300
    keyboard_top = height - 900
    while y < keyboard_top - 200:
        mine = rng.random() < 0.5
        lines = [_sentence(rng, rng.randrange(3, 6)) for _ in range(rng.randrange(1, 4))]
        box_h = 40 + 48 * len(lines)
        x0, x1 = (width - 760, width - 40) if mine else (40, 760)
        draw.rounded_rectangle(
            (x0, y, x1, y + box_h), radius=24, fill=(220, 248, 198) if mine else (255, 255, 255)
        )
        for i, line in enumerate(lines):
            draw.text((x0 + 28, y + 20 + i * 48), line, font=font(36), fill=(20, 20, 20))
        draw.text((x1 - 110, y + box_h - 34), f"12:4{rng.randrange(10)}", font=font(24), fill=(120, 120, 120))
        y += box_h + 30
    draw.rounded_rectangle(
        (24, keyboard_top - 130, width - 150, keyboard_top - 30), radius=50, fill=(255, 255, 255)
    )
    draw.text((80, keyboard_top - 100), "Message", font=font(40), fill=(150, 150, 150))
    draw.ellipse((width - 130, keyboard_top - 130, width - 30, keyboard_top - 30), fill=(0, 168, 132))
    _keyboard(draw, width, keyboard_top)
    return im


def _keyboard(draw: ImageDraw.ImageDraw, width: int, top: int) -> None:
    draw.rectangle((0, top, width, top + 900), fill=(210, 213, 219))
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    key_w = width // 10
    for r, keys in enumerate(rows):
        offset = (width - key_w * len(keys)) // 2
        for i, key in enumerate(keys):
            x = offset + i * key_w
            y = top + 40 + r * 170
            draw.rounded_rectangle((x + 8, y, x + key_w - 8, y + 140), radius=12, fill=(255, 255, 255))
            draw.text((x + key_w // 2 - 14, y + 40), key, font=font(52), fill=(20, 20, 20))


def gallery_screen(seed: int = 4, size: tuple[int, int] = PHONE_SIZE, noise: float = 1.0) -> Image.Image:
    """A camera/gallery view: photo-like tiles (gradients, soft shapes, sensor noise).

    With the default noise the PNG (zlib level 6, like ``adb screencap -p``) is about 1.7 MB,
    the size the phone agent's users report for such screens.
    """
    rng = random.Random(seed)
    width, height = size
    im = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(im)
    _status_bar(draw, width, dark=True)
    top, bottom = 140, height - 360
    im.paste(_photo(rng, (width, bottom - top), noise), (0, top))
    # Camera controls over a dark strip: flat UI again.
    draw.rectangle((0, bottom, width, height), fill=(10, 10, 10))
    draw.ellipse(
        (width // 2 - 90, bottom + 80, width // 2 + 90, bottom + 260), outline=(255, 255, 255), width=10
    )
    draw.rounded_rectangle((80, bottom + 110, 200, bottom + 230), radius=16, fill=(90, 90, 90))
    draw.text((width - 240, bottom + 140), "PHOTO", font=font(40, bold=True), fill=(255, 200, 0))
    return im


def _photo(rng: random.Random, size: tuple[int, int], noise: float) -> Image.Image:
    width, height = size
    # Sky-to-ground gradient built small and scaled up (cheap, smooth).
    sky = Image.linear_gradient("L").resize((width, height))
    top_col = tuple(rng.randrange(60, 200) for _ in range(3))
    low_col = tuple(rng.randrange(20, 120) for _ in range(3))
    base = Image.composite(Image.new("RGB", size, low_col), Image.new("RGB", size, top_col), sky)  # type: ignore[arg-type]
    shapes = Image.new("RGB", size, (0, 0, 0))
    mask = Image.new("L", size, 0)
    sdraw, mdraw = ImageDraw.Draw(shapes), ImageDraw.Draw(mask)
    for _ in range(40):
        x, y = rng.randrange(-200, width), rng.randrange(-200, height)
        w, h = rng.randrange(80, 500), rng.randrange(80, 500)
        sdraw.ellipse((x, y, x + w, y + h), fill=tuple(rng.randrange(0, 256) for _ in range(3)))  # type: ignore[arg-type]
        mdraw.ellipse((x, y, x + w, y + h), fill=rng.randrange(90, 230))
    shapes = shapes.filter(ImageFilter.GaussianBlur(12))
    mask = mask.filter(ImageFilter.GaussianBlur(12))
    photo = Image.composite(shapes, base, mask)
    # Low-frequency texture plus per-pixel sensor noise: what makes photos expensive in PNG.
    texture = Image.effect_noise((width // 8, height // 8), 60).resize(size, Image.Resampling.BICUBIC)
    photo = Image.blend(photo, Image.merge("RGB", (texture, texture, texture)), 0.15)
    if noise > 0:
        grain = Image.effect_noise(size, noise)  # mean 128, gaussian
        photo = Image.blend(photo, Image.merge("RGB", (grain, grain, grain)), 0.12)
    return photo


SCREENS: dict[str, Callable[..., Image.Image]] = {
    "settings": settings_screen,
    "list": list_screen,
    "chat": chat_screen,
    "feed": feed_screen,
    "gallery": gallery_screen,
}


def png_bytes(im: Image.Image, compress_level: int = 6) -> bytes:
    """Encode like ``adb screencap -p``: PNG, zlib level 6."""
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=compress_level)
    return buf.getvalue()


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def small_screen(seed: int = 5, size: tuple[int, int] = (120, 240)) -> Image.Image:
    """A small but non-trivial UI image for fast tests (text + shapes + a gradient)."""
    rng = random.Random(seed)
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(im)
    for i in range(6):
        color = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle((4, 10 + i * 36, size[0] - 4, 36 + i * 36), fill=color)  # type: ignore[arg-type]
        draw.text((8, 14 + i * 36), f"row {i}", font=font(14), fill=(0, 0, 0))
    return im


def png_with_fake_size(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR claims ``width`` x ``height`` (a decompression bomb header).

    The IDAT holds almost nothing, so decoding never happens: only the header is read.
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )
