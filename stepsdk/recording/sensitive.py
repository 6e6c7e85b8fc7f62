"""Sensitive screenshots: what is stored of a screen flagged sensitive, and the key that unlocks it.

Pure functions the screenshot stage (worker thread) and the readers call; nothing here runs on
the agent's thread except :func:`mark` (argument checks only).

Policies for a screen flagged ``sensitive`` (``record_step(..., sensitive=True)``, the PhoneAgent
device flag): ``store`` keeps it like any screen; ``redact`` stores a fixed placeholder image and
``metadata.withheld`` (the pixels are never decoded, let alone written); ``encrypt`` stores the
WebP encrypted with AES-256-GCM (``cryptography``) under ``<sha[:2]>/<sha>.enc`` where ``sha`` is
the sha256 of the stored (encrypted) bytes. Default: ``encrypt`` when a key is configured
(``STEPSDK_SCREENSHOT_KEY``, or a key file: ``STEPSDK_SCREENSHOT_KEY_FILE``), else ``redact``.
Screens not flagged sensitive are stored as before.

Encrypted object layout: ``MAGIC`` (8 bytes) + key id (8 bytes: a hash of the key, so a wrong
key is told apart from damaged data) + nonce (12 bytes) + ciphertext with its 16-byte tag; the
magic and key id are authenticated as associated data.

``redact_regions=[(x, y, w, h), ...]`` boxes (pixels of the screen as recorded, after EXIF
orientation) are blacked out (or blurred, ``region_style="blur"``) before encoding, whatever
the policy.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import io
import logging
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from stepsdk.errors import ConfigurationError
from stepsdk.schema import ENCRYPTED_SUFFIX, storage_path

if TYPE_CHECKING:
    from PIL import Image

    from stepsdk.config import Config
    from stepsdk.recording.screenshots import PreparedScreenshot, ScreenshotInput

log = logging.getLogger("stepsdk.sensitive")

POLICIES: Final = ("store", "redact", "encrypt")
REGION_STYLES: Final = ("black", "blur")
ENV_POLICY: Final = "STEPSDK_SCREENSHOT_POLICY"
ENV_KEY: Final = "STEPSDK_SCREENSHOT_KEY"
ENV_KEY_FILE: Final = "STEPSDK_SCREENSHOT_KEY_FILE"
ENCRYPTED_CONTENT_TYPE: Final = "application/octet-stream"
MAGIC: Final = b"SDKENC\x01\x00"
_KEY_ID_LEN: Final = 8
_NONCE_LEN: Final = 12
_HEADER_LEN: Final = len(MAGIC) + _KEY_ID_LEN + _NONCE_LEN
MAX_REGIONS: Final = 64


class ScreenshotKeyError(ConfigurationError):
    """The configured key cannot be used (wrong format, unreadable file). Never holds the key."""


class DecryptError(Exception):
    """An encrypted screenshot cannot be opened. ``reason``: no_key | wrong_key | corrupt."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# ------------------------------------------------------------------------------ keys
def parse_key(text: str | bytes, source: str = ENV_KEY) -> bytes:
    """32 key bytes from 64 hex characters or base64 (standard or URL-safe) of 32 bytes."""
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    raw = raw.strip()
    if len(raw) == 64:
        try:
            return bytes.fromhex(raw)
        except ValueError:
            pass
    try:
        key = base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ScreenshotKeyError(
            f"{source} must be a 256-bit key: 64 hex characters or base64 of 32 bytes "
            f"(got {len(raw)} characters); make one with `openssl rand -base64 32`"
        )
    return key


def generate_key() -> str:
    """A new random key, base64 (what ``STEPSDK_SCREENSHOT_KEY`` takes)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def load_key(
    key_file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> bytes | None:
    """The screenshot key: ``STEPSDK_SCREENSHOT_KEY``, else ``key_file`` / ``STEPSDK_SCREENSHOT_KEY_FILE``;
    None when neither is set. Raises :class:`ScreenshotKeyError` for a malformed or unreadable key."""
    env = os.environ if env is None else env
    value = env.get(ENV_KEY)
    if value:
        return parse_key(value, ENV_KEY)
    path = key_file or env.get(ENV_KEY_FILE)
    if not path:
        return None
    try:
        st = os.stat(path)
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ScreenshotKeyError(
            f"cannot read the screenshot key file {os.fspath(path)}: {exc.strerror or exc}"
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "stepsdk: the screenshot key file %s is readable by other users (chmod 600 it)", os.fspath(path)
        )
    return parse_key(text, f"the key file {os.fspath(path)}")


def key_id(key: bytes) -> bytes:
    """8 bytes naming the key (a one-way hash): stored with each object to spot a wrong key."""
    return hashlib.sha256(b"stepsdk-screenshot-key\x00" + key).digest()[:_KEY_ID_LEN]


# ------------------------------------------------------------------------------ policy
@dataclasses.dataclass(frozen=True, slots=True)
class ShotPolicy:
    """What the screenshot stage does with sensitive screens (resolved once per configuration)."""

    sensitive: str  # store | redact | encrypt
    key: bytes | None = dataclasses.field(default=None, repr=False)
    region_style: str = "black"


def check_policy_name(policy: object, where: str = "screenshot_policy") -> None:
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"{where} must be one of {', '.join(POLICIES)}, got {policy!r}")


def resolve_policy(
    policy: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    region_style: str = "black",
    env: Mapping[str, str] | None = None,
) -> ShotPolicy:
    """``policy`` (else ``STEPSDK_SCREENSHOT_POLICY``, else ``encrypt`` with a key / ``redact``).
    Raises ValueError for an unknown policy, ``encrypt`` without a key, or a bad key."""
    env = os.environ if env is None else env
    chosen = policy or env.get(ENV_POLICY) or None
    check_policy_name(chosen, "screenshot_policy" if policy else ENV_POLICY)
    if region_style not in REGION_STYLES:
        raise ValueError(f"region_style must be one of {', '.join(REGION_STYLES)}, got {region_style!r}")
    key = load_key(key_file, env)
    if chosen is None:
        chosen = "encrypt" if key is not None else "redact"
    if chosen == "encrypt" and key is None:
        raise ValueError(f"screenshot_policy 'encrypt' needs a key: set {ENV_KEY} or {ENV_KEY_FILE}")
    return ShotPolicy(chosen, key if chosen == "encrypt" else None, region_style)


def policy_for(config: Config) -> ShotPolicy:
    """The policy of a tracker's configuration (cached per policy, key file and key variables)."""
    env = os.environ
    return _cached_policy(
        getattr(config, "screenshot_policy", None),
        getattr(config, "screenshot_key_file", None),
        getattr(config, "region_style", "black"),
        env.get(ENV_POLICY),
        env.get(ENV_KEY),
        env.get(ENV_KEY_FILE),
    )


@functools.lru_cache(maxsize=16)
def _cached_policy(
    policy: str | None,
    key_file: str | None,
    region_style: str,
    env_policy: str | None,
    env_key: str | None,
    env_key_file: str | None,
) -> ShotPolicy:
    env = {k: v for k, v in ((ENV_POLICY, env_policy), (ENV_KEY, env_key), (ENV_KEY_FILE, env_key_file)) if v}
    return resolve_policy(policy, key_file, region_style, env)


# ------------------------------------------------------------------------------ caller side
def mark(screenshot: Any, sensitive: bool | None, regions: Any) -> ScreenshotInput:
    """Caller thread: capture ``screenshot`` with its sensitive flag and redaction boxes (checks only)."""
    from stepsdk.recording import screenshots as _screenshots

    ref = _screenshots.capture(screenshot, sensitive=sensitive)
    if regions is None:
        return ref
    boxes = check_regions(regions)
    return _screenshots.ScreenshotInput(ref.kind, ref.payload, ref.sensitive, ref.captured_at, boxes)


def check_regions(regions: Any) -> tuple[tuple[int, int, int, int], ...]:
    """Boxes as a tuple of ``(x, y, w, h)`` ints (caller thread: exact type checks, ~0.3 µs a box)."""
    if type(regions) not in (list, tuple):
        raise TypeError(f"redact_regions must be a list of (x, y, w, h) tuples, got {type(regions).__name__}")
    if len(regions) > MAX_REGIONS:
        raise ValueError(f"redact_regions has {len(regions)} boxes; the limit is {MAX_REGIONS}")
    out = []
    for box in regions:
        if type(box) not in (tuple, list) or len(box) != 4:
            raise TypeError(f"each redact_regions box must be 4 ints (x, y, w, h), got {box!r}")
        x, y, w, h = box
        if not (type(x) is int and type(y) is int and type(w) is int and type(h) is int):
            raise TypeError(f"each redact_regions box must be 4 ints (x, y, w, h), got {box!r}")
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise ValueError(f"redact_regions box {tuple(box)}: x, y must be >= 0 and w, h > 0")
        out.append((x, y, w, h))
    return tuple(out)


# ------------------------------------------------------------------------------ worker side
def redact_regions(
    image: Image.Image, regions: Sequence[tuple[int, int, int, int]], style: str = "black"
) -> Image.Image:
    """A copy of ``image`` with the boxes blacked out (or blurred beyond reading). Boxes past
    the edges are clipped. The caller's image is never changed."""
    from PIL import Image, ImageDraw, ImageFilter

    out = image.copy()
    width, height = out.size
    draw = ImageDraw.Draw(out) if style == "black" else None
    for x, y, w, h in regions:
        box = (min(x, width), min(y, height), min(x + w, width), min(y + h, height))
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        if draw is not None:
            draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(0,) * len(out.getbands()))
        else:
            part = out.crop(box)
            # Average 16x16 blocks, then blur: a plain Gaussian blur of text can be partly undone.
            small = part.resize(
                (max(1, part.width // 16), max(1, part.height // 16)), resample=Image.Resampling.BOX
            )
            out.paste(
                small.resize(part.size, resample=Image.Resampling.BILINEAR).filter(
                    ImageFilter.GaussianBlur(4)
                ),
                box[:2],
            )
    return out


def encrypt(data: bytes, key: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = MAGIC + key_id(key)
    nonce = os.urandom(_NONCE_LEN)
    return header + nonce + AESGCM(key).encrypt(nonce, data, header)


def is_encrypted(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def is_encrypted_path(screenshot_path: object) -> bool:
    return isinstance(screenshot_path, str) and screenshot_path.endswith(ENCRYPTED_SUFFIX)


def decrypt(data: bytes, key: bytes | None) -> bytes:
    """The plaintext of an encrypted object. Raises :class:`DecryptError` with a message fit to show."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not is_encrypted(data) or len(data) < _HEADER_LEN + 16:
        raise DecryptError("corrupt", "not a stepsdk encrypted screenshot (bad header)")
    if key is None:
        raise DecryptError("no_key", f"encrypted screenshot: set {ENV_KEY} (or {ENV_KEY_FILE}) to view it")
    stored_id = data[len(MAGIC) : len(MAGIC) + _KEY_ID_LEN]
    if stored_id != key_id(key):
        raise DecryptError(
            "wrong_key",
            f"wrong screenshot key: this screenshot was encrypted with key "
            f"{stored_id.hex()}, the configured key is {key_id(key).hex()}",
        )
    header, nonce = data[: len(MAGIC) + _KEY_ID_LEN], data[len(MAGIC) + _KEY_ID_LEN : _HEADER_LEN]
    try:
        return AESGCM(key).decrypt(nonce, data[_HEADER_LEN:], header)
    except InvalidTag:
        raise DecryptError("corrupt", "the encrypted screenshot is damaged (authentication failed)") from None


def object_problem(data: bytes) -> str | None:
    """Why bytes stored under an ``.enc`` key are not an encrypted screenshot, or None."""
    if not is_encrypted(data) or len(data) < _HEADER_LEN + 16:
        return "is not a stepsdk encrypted screenshot (bad header)"
    return None


@functools.lru_cache(maxsize=1)
def placeholder() -> tuple[bytes, int, int]:
    """The WebP stored instead of a redacted screen (fixed bytes: content-addressed once)."""
    from PIL import Image, ImageDraw

    w, h = 270, 600
    img = Image.new("RGB", (w, h), (229, 231, 235))
    d = ImageDraw.Draw(img)
    d.rectangle((4, 4, w - 5, h - 5), outline=(156, 163, 175), width=4)
    d.rounded_rectangle((105, 270, 165, 320), radius=6, fill=(107, 114, 128))  # padlock body
    d.arc((115, 235, 155, 290), start=180, end=360, fill=(107, 114, 128), width=8)  # shackle
    d.text((w // 2, 350), "sensitive screen withheld", fill=(75, 85, 99), anchor="mm")
    buf = io.BytesIO()
    img.save(buf, "WEBP", lossless=True)
    return buf.getvalue(), w, h


def prepare(ref: ScreenshotInput, config: Config) -> PreparedScreenshot:
    """Worker thread: the object to store for ``ref`` under the configuration's policy.

    Raises ``ScreenshotError`` like ``_screenshots.prepare`` for bad input. A policy that cannot
    be resolved (key file gone) falls back to ``redact``: a sensitive screen is never stored in
    the clear by accident."""
    from stepsdk.recording import screenshots as _screenshots

    try:
        policy = policy_for(config)
    except ValueError as exc:
        log.warning("stepsdk: screenshot policy unusable (%s); sensitive screens are redacted", exc)
        policy = ShotPolicy("redact", None, "black")
    options = _screenshots.ScreenshotOptions(region_style=policy.region_style)
    if not ref.sensitive or policy.sensitive == "store":
        return _screenshots.prepare(ref, options)
    if policy.sensitive == "redact":
        data, w, h = placeholder()
        sha = hashlib.sha256(data).hexdigest()
        meta = {"width": w, "height": h, "sensitive": True, "withheld": True, "policy": "redact"}
        return _screenshots.PreparedScreenshot(data, sha, storage_path(sha), w, h, meta)
    assert policy.key is not None
    plain = _screenshots.prepare(ref, options)
    data = encrypt(plain.data, policy.key)
    sha = hashlib.sha256(data).hexdigest()
    meta = {
        **plain.metadata,
        "sensitive": True,
        "policy": "encrypt",
        "encrypted": "AES-256-GCM",
        "key_id": key_id(policy.key).hex(),
    }
    return _screenshots.PreparedScreenshot(
        data, sha, storage_path(sha, ENCRYPTED_SUFFIX), plain.width, plain.height, meta
    )


def content_type(screenshot_path: str) -> str:
    """The content type to upload an object with."""
    return ENCRYPTED_CONTENT_TYPE if is_encrypted_path(screenshot_path) else "image/webp"


# ------------------------------------------------------------------------------ readers
@dataclasses.dataclass(frozen=True, slots=True)
class Viewable:
    """What a reader may show for a stored object: ``data`` (plaintext image bytes) or ``locked``
    with a message fit to show (``reason``: no_key | wrong_key | corrupt)."""

    data: bytes | None
    locked: bool = False
    reason: str | None = None
    message: str | None = None
    decrypted: bool = False


def viewable(data: bytes, key: bytes | None | str = "env") -> Viewable:
    """Open stored bytes for display: plain images pass through; encrypted ones are decrypted with
    ``key`` (default: the configured key) or come back locked. Never raises for bad data or keys."""
    if not is_encrypted(data):
        return Viewable(data)
    if key == "env":
        try:
            key = load_key()
        except ScreenshotKeyError as exc:
            return Viewable(None, True, "bad_key", str(exc))
    try:
        return Viewable(decrypt(data, key if isinstance(key, bytes) else None), decrypted=True)
    except DecryptError as exc:
        return Viewable(None, True, exc.reason, exc.message)


__all__ = [
    "ENCRYPTED_SUFFIX",
    "ENV_KEY",
    "ENV_KEY_FILE",
    "ENV_POLICY",
    "POLICIES",
    "DecryptError",
    "ScreenshotKeyError",
    "ShotPolicy",
    "Viewable",
    "check_regions",
    "content_type",
    "decrypt",
    "encrypt",
    "generate_key",
    "is_encrypted",
    "is_encrypted_path",
    "key_id",
    "load_key",
    "mark",
    "object_problem",
    "parse_key",
    "placeholder",
    "policy_for",
    "prepare",
    "redact_regions",
    "resolve_policy",
    "viewable",
]
