"""Screenshots: hold them cheaply on the agent's thread, turn them into WebP on the worker.

Two halves, on two threads:

* :func:`capture` runs on the caller's (agent's) thread. It only checks the *type* of the
  source and keeps a reference (or a copy of a mutable buffer). No file is read, nothing is
  decoded: it costs about a microsecond. A wrong type raises :class:`TypeError` at once,
  because that is a programming mistake.
* :func:`prepare` runs on the worker thread. It reads and decodes the source (with a
  decompression-bomb limit), applies the EXIF orientation, converts the mode, downscales,
  encodes WebP and hashes the stored bytes. Every runtime problem (missing file, corrupt or
  truncated data, a bomb...) becomes a :class:`ScreenshotError` with a machine-readable
  ``reason``; nothing else escapes for bad input.

The stored object is content-addressed: ``<sha256[0:2]>/<sha256>.webp`` where the sha256 is
that of the WebP bytes, so an identical screen recorded twice is stored once. libwebp is
deterministic for a given version and settings (single-threaded encoding, which is what
Pillow uses), so the same pixels give the same key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import os
import re
import stat
import struct
import time
import urllib.parse
import zlib
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from stepsdk import schema
from stepsdk.errors import SCREENSHOT_REASONS, ScreenshotError, ScreenshotReason

__all__ = [
    "CONTENT_TYPE",
    "REASONS",
    "PreparedScreenshot",
    "ScreenshotError",
    "ScreenshotInput",
    "ScreenshotOptions",
    "ScreenshotSource",
    "capture",
    "flat_fraction",
    "prepare",
    "read_webp_size",
    "target_size",
]

log = logging.getLogger(__name__)

ScreenshotSource: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image"
"""What :func:`capture` accepts: a path, encoded image bytes, base64 / data URL text, or a PIL image."""

Reason = ScreenshotReason
REASONS: Final[frozenset[str]] = SCREENSHOT_REASONS

# Formats we decode: what screenshot tools produce. A whitelist on purpose: every other Pillow
# plugin is attack surface for no benefit (EPS runs Ghostscript; TIFF's many tags warn and
# allocate on hostile files).
_ALLOWED_FORMATS: Final = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
CONTENT_TYPE: Final = "image/webp"
_WEBP_MAX_SIDE: Final = 16383  # libwebp's hard limit per dimension
_PATH_MAX: Final = 4096  # Linux PATH_MAX: a longer str cannot be a path, so it must be data
_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)
_BASE64_RE: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


@dataclass(frozen=True, slots=True)
class ScreenshotOptions:
    """How screenshots are stored. Defaults chosen by ``benchmarks/bench_screenshots.py``.

    ``encoding``: ``"lossy"`` (the default: downscaled to ``max_width``, WebP ``quality``,
    predictable ~110-140 ms of CPU per phone screen), ``"lossless"`` (exact pixels at full
    size, ``lossless_method`` effort), or ``"auto"``: lossless when the screen is flat UI (at
    least ``flat_threshold`` of a pixel sample falls in its 64 most common colours) and at
    most ``lossless_max_pixels``, lossy otherwise, and lossy as well when the lossless result
    exceeds ``lossless_max_bytes``. Flat UI stored lossless is smaller or equal and sharper,
    but its CPU time varies with the content (100-400 ms); photos stored lossless are 20-30x
    bigger. Numbers: benchmarks/README.md.
    ``max_width`` downscales wider images for lossy encoding (aspect kept); ``None`` keeps full size.
    ``quality``/``method`` are libwebp's (0-100, 0-6: higher method = slower, smaller).
    ``max_pixels`` refuses images whose header claims more pixels (decompression bombs);
    ``max_input_bytes`` refuses bigger encoded inputs before reading them.
    """

    max_width: int | None = 720
    quality: int = 80
    method: int = 4
    encoding: Literal["auto", "lossy", "lossless"] = "lossy"
    flat_threshold: float = 0.98
    lossless_max_pixels: int = 4_000_000
    lossless_max_bytes: int = 200 * 1024
    lossless_method: int = 1
    max_pixels: int = 50_000_000
    max_input_bytes: int = 64 * 1024 * 1024
    region_style: Literal["black", "blur"] = "black"  # how redact_regions boxes are hidden

    def __post_init__(self) -> None:
        _check_int("max_width", self.max_width, 1, 1_000_000, optional=True)
        _check_int("quality", self.quality, 0, 100)
        _check_int("method", self.method, 0, 6)
        if self.encoding not in ("auto", "lossy", "lossless"):
            raise ValueError(f"encoding must be 'auto', 'lossy' or 'lossless', got {self.encoding!r}")
        if isinstance(self.flat_threshold, bool) or not isinstance(self.flat_threshold, int | float):
            raise TypeError(f"flat_threshold must be a number, got {type(self.flat_threshold).__name__}")
        if not 0.0 <= self.flat_threshold <= 1.0:
            raise ValueError(f"flat_threshold must be between 0 and 1, got {self.flat_threshold}")
        _check_int("lossless_max_pixels", self.lossless_max_pixels, 1, 2**40)
        _check_int("lossless_max_bytes", self.lossless_max_bytes, 1, 2**40)
        _check_int("lossless_method", self.lossless_method, 0, 6)
        _check_int("max_pixels", self.max_pixels, 1, 2**40)
        _check_int("max_input_bytes", self.max_input_bytes, 1, 2**40)
        if self.region_style not in ("black", "blur"):
            raise ValueError(f"region_style must be 'black' or 'blur', got {self.region_style!r}")


def _check_int(name: str, value: object, low: int, high: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


_Kind = Literal["path", "bytes", "text", "image"]


class ScreenshotInput:
    """A screenshot held by reference between :func:`capture` and :func:`prepare`.

    Plain slotted class (not a frozen dataclass) because it is built on the agent's thread
    and a frozen dataclass' ``__init__`` costs several times more.
    """

    __slots__ = ("captured_at", "kind", "payload", "regions", "sensitive")

    def __init__(
        self,
        kind: _Kind,
        payload: Any,
        sensitive: bool | None,
        captured_at: float,
        regions: tuple[tuple[int, int, int, int], ...] | None = None,
    ) -> None:
        self.kind = kind
        self.payload = payload
        self.sensitive = sensitive
        self.captured_at = captured_at  # time.time() at capture, for ordering/debugging
        self.regions = regions  # (x, y, w, h) boxes blacked out/blurred before encoding (_sensitive)

    def __repr__(self) -> str:  # never the data itself: it may be a large, sensitive screen
        size = len(self.payload) if isinstance(self.payload, bytes | str) else None
        return f"ScreenshotInput(kind={self.kind!r}, size={size}, sensitive={self.sensitive})"


@dataclass(frozen=True, slots=True)
class PreparedScreenshot:
    """A screenshot ready to store: WebP bytes, their sha256 and the object key."""

    data: bytes = field(repr=False)
    sha256: str
    screenshot_path: str
    width: int
    height: int
    metadata: dict[str, Any]

    @property
    def file_size(self) -> int:
        return len(self.data)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPE


def capture(source: object, *, sensitive: bool | None = None, copy: bool = False) -> ScreenshotInput:
    """Take a screenshot reference on the caller's thread: type checks only, no I/O, no decoding.

    ``source``: a filesystem path (``str``/``os.PathLike``), encoded image bytes (``bytes``
    kept by reference; ``bytearray``/``memoryview`` copied because the caller may reuse them),
    base64 text or a ``data:`` URL (``str``; told apart from a path later, on the worker), or a
    ``PIL.Image.Image``.

    A PIL image is kept by reference (copying a 1080x2400 RGB image costs ~1 ms, a thousand
    times the rest of this call): do not draw on it after recording, or pass ``copy=True``.
    A lazily opened image (``Image.open`` not yet loaded) is captured by its file name, because
    ``with Image.open(p) as im: record(im)`` closes the file before the worker reads it.

    A path is read when the worker gets to it (normally within milliseconds). An agent that
    writes every screenshot to the same file should pass the bytes instead; if the file changed
    after this call, the stored screenshot's metadata says ``file_changed_after_capture``.

    ``sensitive`` marks a screen the agent flagged (passwords, payments); it ends up in
    ``metadata["sensitive"]``.
    """
    if sensitive is not None and not isinstance(sensitive, bool):
        raise TypeError(f"sensitive must be a bool or None, got {type(sensitive).__name__}")
    if not isinstance(copy, bool):
        raise TypeError(f"copy must be a bool, got {type(copy).__name__}")
    now = time.time()
    if isinstance(source, ScreenshotInput):  # already captured: pass through (marker may be added)
        if sensitive is None or sensitive == source.sensitive:
            return source
        return ScreenshotInput(source.kind, source.payload, sensitive, source.captured_at, source.regions)
    if isinstance(source, bytes):
        return ScreenshotInput("bytes", source, sensitive, now)
    if isinstance(source, str):
        return ScreenshotInput("text", source, sensitive, now)
    if isinstance(source, bytearray | memoryview):
        return ScreenshotInput("bytes", _copy_buffer(source), sensitive, now)
    if isinstance(source, Image.Image):
        return _capture_image(source, sensitive, copy, now)
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
        return ScreenshotInput("path", os.fsdecode(path), sensitive, now)
    raise TypeError(
        "screenshot must be a path (str or os.PathLike), bytes/bytearray/memoryview of an encoded image, "
        f"base64 text, a data: URL or a PIL.Image.Image; got {type(source).__name__}"
    )


def _copy_buffer(source: bytearray | memoryview) -> bytes:
    # tobytes() gives the logical bytes in order for any view (strided, non-byte formats).
    return source.tobytes() if isinstance(source, memoryview) else bytes(source)


def _capture_image(image: Image.Image, sensitive: bool | None, copy: bool, now: float) -> ScreenshotInput:
    if isinstance(image, ImageFile.ImageFile) and getattr(image, "_im", True) is None:
        # Not decoded yet: the pixels still live in the file. Keep its name (no I/O here).
        filename = getattr(image, "filename", None)
        if isinstance(filename, str | bytes) and filename:
            return ScreenshotInput("path", os.fsdecode(filename), sensitive, now)
        fp = getattr(image, "fp", None)
        if isinstance(fp, io.BytesIO):
            return ScreenshotInput("bytes", fp.getvalue(), sensitive, now)
    return ScreenshotInput("image", image.copy() if copy else image, sensitive, now)


# ---------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Source:
    """What the worker knows about the input before decoding."""

    data: bytes | None
    image: Image.Image | None
    kind: str  # path | bytes | base64 | data_url | pil
    original_size: int | None
    mtime: float | None = None  # a file's modification time, to spot files rewritten after capture


def prepare(ref: ScreenshotInput, options: ScreenshotOptions | None = None) -> PreparedScreenshot:
    """Decode, normalise and encode one screenshot as WebP (worker thread).

    Raises :class:`ScreenshotError` for any problem with the input; :class:`TypeError` only
    for wrong argument types (a bug in the caller).
    """
    if not isinstance(ref, ScreenshotInput):
        raise TypeError(
            f"prepare() needs the ScreenshotInput returned by capture(), got {type(ref).__name__}"
        )
    if options is None:
        options = ScreenshotOptions()
    elif not isinstance(options, ScreenshotOptions):
        raise TypeError(f"options must be a ScreenshotOptions, got {type(options).__name__}")
    started = time.perf_counter()
    source = _resolve(ref, options)
    image, original_format = _open(source, options)
    original_size = image.size
    normal = _normalise(image, original_format)
    if ref.regions:  # before downscaling: the boxes are in the screen's own pixels
        from stepsdk.recording.sensitive import redact_regions

        normal = redact_regions(normal, ref.regions, options.region_style)
    image, data, choice = _encode_best(normal, options)
    sha = hashlib.sha256(data).hexdigest()
    metadata = _metadata(ref, source, original_format, original_size, image.size, choice, options)
    metadata["prepare_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return PreparedScreenshot(
        data=data,
        sha256=sha,
        screenshot_path=schema.storage_path(sha),
        width=image.width,
        height=image.height,
        metadata=metadata,
    )


def _metadata(
    ref: ScreenshotInput,
    source: _Source,
    original_format: str,
    original_size: tuple[int, int],
    size: tuple[int, int],
    choice: _Choice,
    options: ScreenshotOptions,
) -> dict[str, Any]:
    """The JSON metadata of a stored screenshot (``step_screenshots.metadata``)."""
    metadata: dict[str, Any] = {
        "width": size[0],
        "height": size[1],
        "original_format": original_format,
        "original_size": source.original_size,
        "original_width": original_size[0],
        "original_height": original_size[1],
        "source": source.kind,
        "encoding": "lossless" if choice.lossless else "lossy",
        "quality": None if choice.lossless else options.quality,
        "method": options.lossless_method if choice.lossless else options.method,
        "flat_fraction": choice.flat_fraction,
    }
    if ref.sensitive is not None:
        metadata["sensitive"] = ref.sensitive
    if ref.regions:
        metadata["redacted_regions"] = len(ref.regions)
    if source.mtime is not None and source.mtime > ref.captured_at:
        # The file was rewritten between record_step() and the worker reading it (an agent
        # that reuses one file name per step): the stored image may be a later screen.
        metadata["file_changed_after_capture"] = True
    return metadata


def _resolve(ref: ScreenshotInput, options: ScreenshotOptions) -> _Source:
    if ref.kind == "bytes":
        return _Source(_check_size(ref.payload, options), None, "bytes", len(ref.payload))
    if ref.kind == "image":
        return _Source(None, ref.payload, "pil", None)
    if ref.kind == "path":
        return _read_file(ref.payload, options)
    return _resolve_text(ref.payload, options)


def _check_size(data: bytes, options: ScreenshotOptions) -> bytes:
    if not data:
        raise ScreenshotError("empty", "the screenshot data is empty (0 bytes)")
    if len(data) > options.max_input_bytes:
        raise ScreenshotError(
            "too_large", f"the screenshot is {len(data)} bytes, over the {options.max_input_bytes} byte limit"
        )
    return data


def _read_file(path: str, options: ScreenshotOptions) -> _Source:
    shown = _show_path(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise ScreenshotError("is_directory", f"{shown} is a directory, not an image file")
        if not stat.S_ISREG(st.st_mode):
            # FIFOs and devices could block the worker forever or never end.
            raise ScreenshotError("unreadable", f"{shown} is not a regular file")
        if st.st_size > options.max_input_bytes:
            raise ScreenshotError(
                "too_large", f"{shown} is {st.st_size} bytes, over the {options.max_input_bytes} byte limit"
            )
        with open(path, "rb") as fh:
            # Read at most one byte past the limit: the file may grow between stat and read.
            data = fh.read(options.max_input_bytes + 1)
    except ScreenshotError:
        raise
    except (FileNotFoundError, NotADirectoryError):
        raise ScreenshotError("not_found", f"no such file: {shown}") from None
    except IsADirectoryError:
        raise ScreenshotError("is_directory", f"{shown} is a directory, not an image file") from None
    except (OSError, ValueError) as exc:  # permissions, I/O errors, NUL in the path
        raise ScreenshotError("unreadable", f"cannot read {shown}: {type(exc).__name__}") from None
    return _Source(_check_size(data, options), None, "path", len(data), st.st_mtime)


def _show_path(path: str) -> str:
    # A path is shown in errors (useful); keep it bounded and printable.
    text = path if len(path) <= 300 else path[:300] + "..."
    return repr(text)


def _resolve_text(text: str, options: ScreenshotOptions) -> _Source:
    # Refuse oversized text before decoding it: base64 gives 3 bytes per 4 characters, a
    # percent-encoded data: URL at least 1 byte per 3 characters.
    if len(text) // 4 * 3 > options.max_input_bytes + 3 and (
        not text.startswith("data:") or ";base64," in text[:200].lower()
    ):
        raise ScreenshotError(
            "too_large",
            f"the screenshot text is {len(text)} characters, over the {options.max_input_bytes} byte limit",
        )
    if text.startswith("data:"):
        data = _decode_data_url(text)
        return _Source(_check_size(data, options), None, "data_url", len(data))
    stripped = text.strip()
    if not stripped:
        raise ScreenshotError("empty", "the screenshot text is empty")
    looks_like_path = len(text) <= _PATH_MAX and "\n" not in text
    if looks_like_path and _is_existing_path(text):
        return _read_file(text, options)
    data = _try_base64(stripped)
    if data is not None and (not looks_like_path or _sniff(data) is not None):
        return _Source(_check_size(data, options), None, "base64", len(data))
    if looks_like_path:
        if data is None and _BASE64_RE.fullmatch(stripped) and len(stripped) >= 64:
            raise ScreenshotError("invalid_base64", "the text looks like base64 but does not decode")
        raise ScreenshotError(
            "not_found", f"no such file: {_show_path(text)} (and the text is not base64 image data)"
        )
    raise ScreenshotError(
        "invalid_base64", f"the text ({len(text)} characters) is not valid base64 image data"
    )


def _is_existing_path(text: str) -> bool:
    try:
        return os.path.lexists(text)
    except (OSError, ValueError):
        return False


def _try_base64(text: str) -> bytes | None:
    compact = "".join(text.split())  # base64 from some tools is wrapped at 76 columns
    if not _BASE64_RE.fullmatch(compact):
        return None
    compact += "=" * (-len(compact) % 4)  # tolerate stripped padding
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(compact)
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _decode_data_url(text: str) -> bytes:
    header, sep, body = text.partition(",")
    if not sep:
        raise ScreenshotError("invalid_base64", "the data: URL has no ',' separating header and data")
    if header.lower().endswith(";base64"):
        data = _try_base64(body.strip())
        if data is None:
            raise ScreenshotError("invalid_base64", "the data: URL's base64 payload does not decode")
        return data
    return urllib.parse.unquote_to_bytes(body)


def _sniff(data: bytes) -> str | None:
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _open(source: _Source, options: ScreenshotOptions) -> tuple[Image.Image, str]:
    if source.image is not None:
        return _check_caller_image(source.image, options)
    assert source.data is not None
    try:
        image = Image.open(io.BytesIO(source.data), formats=_ALLOWED_FORMATS)
    except UnidentifiedImageError:
        fmt = _sniff(source.data)
        if fmt is None:
            raise ScreenshotError(
                "unsupported_format",
                f"not a supported image (expected one of {', '.join(_ALLOWED_FORMATS)}; starts with "
                f"{_describe_start(source.data)})",
            ) from None
        raise ScreenshotError("corrupt", f"the {fmt} header is damaged") from None
    except Image.DecompressionBombError:
        # Pillow's own guard (twice Image.MAX_IMAGE_PIXELS) fires inside open() for huge headers.
        raise ScreenshotError(
            "decompression_bomb",
            f"the image header claims more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels "
            f"(limit {options.max_pixels})",
        ) from None
    except Exception as exc:  # Pillow raises many types on hostile headers
        raise ScreenshotError("corrupt", f"cannot read the image header: {type(exc).__name__}") from None
    fmt = image.format or "unknown"
    _check_pixels(image.size, options, fmt)
    _load(image, fmt)
    return image, fmt


def _describe_start(data: bytes) -> str:
    head = data[:8]
    if head.startswith(b"%PDF"):
        return "'%PDF' (a PDF document)"
    printable = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return repr(head.decode("ascii")) + " (text)" if printable else head.hex(" ")


def _check_pixels(size: tuple[int, int], options: ScreenshotOptions, fmt: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ScreenshotError("empty", f"the {fmt} image has no pixels ({width}x{height})")
    if width * height > options.max_pixels:
        raise ScreenshotError(
            "decompression_bomb",
            f"the {fmt} image claims {width}x{height} = {width * height} pixels, "
            f"over the {options.max_pixels} pixel limit",
        )


def _load(image: Image.Image, fmt: str) -> None:
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ScreenshotError("decompression_bomb", str(exc)[:200]) from None
    except (OSError, EOFError, SyntaxError, ValueError, struct.error, zlib.error, IndexError) as exc:
        text = str(exc).lower()
        if "truncated" in text or "broken data stream" in text or isinstance(exc, EOFError):
            raise ScreenshotError("truncated", f"the {fmt} data ends early ({_safe(exc)})") from None
        raise ScreenshotError("corrupt", f"the {fmt} data is damaged ({_safe(exc)})") from None
    except MemoryError:
        raise ScreenshotError("too_large", f"not enough memory to decode the {fmt} image") from None
    except Exception as exc:
        raise ScreenshotError("corrupt", f"the {fmt} data cannot be decoded ({_safe(exc)})") from None


def _safe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def _check_caller_image(image: Image.Image, options: ScreenshotOptions) -> tuple[Image.Image, str]:
    fmt = image.format or "PIL"
    _check_pixels(image.size, options, fmt)
    try:
        image.load()  # a no-op for in-memory images; fails for a lazily opened, closed file
    except Exception as exc:
        raise ScreenshotError(
            "unreadable",
            f"the PIL image cannot be read ({_safe(exc)}); call im.load() before recording or pass the path",
        ) from None
    return image, fmt


def _normalise(image: Image.Image, fmt: str) -> Image.Image:
    """EXIF orientation, first frame only, then a mode WebP stores: RGB, or RGBA with real alpha."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block must not lose the screenshot
        orientation = 1
    try:
        if orientation != 1:
            image = ImageOps.exif_transpose(image)  # a new image: never mutate the caller's
        return _to_webp_mode(image)
    except ScreenshotError:
        raise
    except MemoryError:
        raise ScreenshotError("too_large", f"not enough memory to convert the {fmt} image") from None
    except Exception as exc:
        raise ScreenshotError("corrupt", f"cannot convert the {fmt} image ({_safe(exc)})") from None


def _to_webp_mode(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "La":  # premultiplied: Pillow converts it to LA only
        image, mode = image.convert("LA"), "LA"
    if mode in ("RGBA", "RGBa", "LA", "PA") or (mode == "P" and image.has_transparency_data):
        rgba = image.convert("RGBA")
        # adb screencap PNGs are RGBA with every pixel opaque: drop such an alpha channel,
        # it only costs bytes and encode time.
        if rgba.getchannel("A").getextrema() == (255, 255):
            return rgba.convert("RGB")
        return rgba
    if mode.startswith("I;16"):
        # 16-bit grey: keep the top 8 bits (convert() would clip everything above 255 to white).
        return image.convert("I").point(lambda v: v / 256).convert("L").convert("RGB")
    if mode in ("I", "F"):
        low, high = image.getextrema()
        scale = 255.0 / (high - low) if high > low else 0.0
        # Stretch the actual range to 0-255 (point() keeps the mode, convert("L") then clips).
        return image.point(lambda v: (v - low) * scale).convert("L").convert("RGB")
    return image.convert("RGB")  # L, 1, P (opaque), CMYK, YCbCr, LAB, HSV, RGBX


@dataclass(frozen=True, slots=True)
class _Choice:
    lossless: bool
    flat_fraction: float | None  # None when not measured (encoding forced)


def _encode_best(image: Image.Image, options: ScreenshotOptions) -> tuple[Image.Image, bytes, _Choice]:
    """Encode as ``options.encoding`` says; in auto mode pick lossless for flat UI screens."""
    if options.encoding == "lossless":
        fitted = _fit_webp(image)
        return fitted, _encode(fitted, options, lossless=True), _Choice(True, None)
    if options.encoding == "lossy":
        small = _downscale(image, options)
        return small, _encode(small, options, lossless=False), _Choice(False, None)
    flat = flat_fraction(image)
    fits = (
        image.width * image.height <= options.lossless_max_pixels
        and target_size(image.size, None) == image.size
    )
    if fits and flat >= options.flat_threshold:
        data = _encode(image, options, lossless=True)
        if len(data) <= options.lossless_max_bytes:
            return image, data, _Choice(True, flat)
        log.debug(
            "lossless screenshot is %d bytes (> %d): storing lossy", len(data), options.lossless_max_bytes
        )
    small = _downscale(image, options)
    return small, _encode(small, options, lossless=False), _Choice(False, flat)


def flat_fraction(image: Image.Image, top: int = 64) -> float:
    """Share of pixels (on a 1/4 x 1/4 nearest-neighbour sample) in the ``top`` most common colours.

    About 0.99 for settings or chat screens (flat fills, anti-aliased text), 0.9 for a list
    with photo thumbnails, 0.25-0.5 for photos. Costs 1-3 ms on a 1080x2400 screen.
    """
    sample = image.resize((max(1, image.width // 4), max(1, image.height // 4)), Image.Resampling.NEAREST)
    colors = sample.getcolors(sample.width * sample.height) or []
    counts = sorted((count for count, _ in colors), reverse=True)
    total = sum(counts)
    return round(sum(counts[:top]) / total, 4) if total else 1.0


def _fit_webp(image: Image.Image) -> Image.Image:
    """Shrink only as far as libwebp's 16383 px per side requires (for lossless)."""
    return _resize(image, target_size(image.size, None))


def _downscale(image: Image.Image, options: ScreenshotOptions) -> Image.Image:
    return _resize(image, target_size(image.size, options.max_width))


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if size == image.size:
        return image
    try:
        # LANCZOS keeps small text readable; BICUBIC saves ~15 ms of ~150 (benchmarks/README.md).
        return image.resize(size, Image.Resampling.LANCZOS)
    except MemoryError:
        raise ScreenshotError("too_large", "not enough memory to resize the image") from None


def target_size(size: tuple[int, int], max_width: int | None) -> tuple[int, int]:
    """The stored size: at most ``max_width`` wide and within WebP's 16383 px limit, aspect kept."""
    width, height = size
    scale = 1.0
    if max_width is not None and width > max_width:
        scale = max_width / width
    scale = min(scale, _WEBP_MAX_SIDE / width, _WEBP_MAX_SIDE / height)
    if scale >= 1.0:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def _encode(image: Image.Image, options: ScreenshotOptions, lossless: bool) -> bytes:
    buf = io.BytesIO()
    try:
        # No EXIF/ICC/XMP in the output: the bytes depend on the pixels only (stable keys),
        # and EXIF can carry GPS position or device serials.
        image.save(
            buf,
            "WEBP",
            # For lossless, libwebp reads quality/method as effort: 80 with method 1 gives the
            # size of method 4 in 2/3 of the time (benchmarks/README.md).
            quality=80 if lossless else options.quality,
            method=options.lossless_method if lossless else options.method,
            lossless=lossless,
            exif=b"",
            icc_profile=None,
            xmp=b"",
        )
    except MemoryError:
        raise ScreenshotError("too_large", "not enough memory to encode the WebP") from None
    except Exception as exc:
        raise ScreenshotError("encode_failed", f"WebP encoding failed ({_safe(exc)})") from None
    return buf.getvalue()


def read_webp_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of stored WebP bytes, or ``None`` if they are not a readable WebP.

    For readers (viewer, resync checks) that want to validate an object without trusting it.
    """
    try:
        with Image.open(io.BytesIO(data), formats=("WEBP",)) as image:
            return image.size
    except Exception:
        return None
