"""Import of an export file (the logic behind ``stepsdk import``; the format is described in
:mod:`stepsdk.store.export_format`).

Imports are validated completely (version, columns, types, ids, references, zip entry names and
sizes, image hashes) before anything is written, so a bad file changes nothing; the rows then go
through the recorder's sanitizer (secrets redacted) and into the backup as one new journal,
written atomically, from where ``stepsdk resync`` uploads them.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import socket
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from stepsdk.errors import ExportFormatError
from stepsdk.ops.import_check import kind_of, preview, validate_bundle
from stepsdk.schema import STORAGE_PATH_RE
from stepsdk.schema import storage_path as schema_storage_path
from stepsdk.store.export_format import (
    CONTROL_CHARS,
    DATA_FILES,
    EXPORT_VERSION,
    MANIFEST,
    SCREENSHOT_COLUMNS,
    SCREENSHOT_DIR,
    STEP_COLUMNS,
    TaskBundle,
    is_safe_screenshot_path,
    screenshot_paths,
    write_atomically,
)


@dataclass(frozen=True)
class Limits:
    """What an import accepts; anything bigger is refused before it is read."""

    max_data_bytes: int = 512 * 1024 * 1024
    max_image_bytes: int = 25 * 1024 * 1024  # the bucket's own limit is 20 MiB
    max_total_bytes: int = 4 * 1024 * 1024 * 1024
    max_entries: int = 200_000
    max_errors_shown: int = 10


# --------------------------------------------------------------------------- loading an export


@dataclass
class LoadedExport:
    """A validated export: the bundles and, from a zip, the images by storage path."""

    bundles: list[TaskBundle]
    images: dict[str, bytes] = field(default_factory=dict)
    missing_images: list[str] = field(default_factory=list)
    kind: str = "json"


def _strict_json(text: str, where: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise ExportFormatError([f"{where}: duplicate key {key!r}"])
            obj[key] = value
        return obj

    def no_constant(name: str) -> Any:
        raise ExportFormatError([f"{where}: {name} is not valid JSON"])

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):  # 1e999 parses as inf, which jsonb refuses
            raise ExportFormatError([f"{where}: number {number[:40]} is out of range"])
        return value

    try:
        return json.loads(
            text, object_pairs_hook=no_duplicates, parse_constant=no_constant, parse_float=finite
        )
    except json.JSONDecodeError as exc:
        raise ExportFormatError(
            [f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]
        ) from None
    except RecursionError:
        raise ExportFormatError([f"{where}: nested too deeply"]) from None


def _check_version(obj: dict[str, Any], where: str) -> None:
    version = obj.get("stepsdk_export")
    if "stepsdk_export" not in obj:
        raise ExportFormatError([f'{where}: not a stepsdk export (no "stepsdk_export" version field)'])
    if type(version) is not int or version != EXPORT_VERSION:
        raise ExportFormatError(
            [
                f"{where}: unsupported export version {preview(version)} "
                f"(this stepsdk reads version {EXPORT_VERSION})"
            ]
        )


def parse_data(text: str, name: str, limits: Limits = Limits()) -> list[TaskBundle]:
    """Parse and validate an export data file (JSON envelope or JSONL)."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise ExportFormatError([f"{name}: the file is empty"])
    if not stripped.startswith("{"):
        hint = (
            " (CSV exports cannot be imported: export with --format json or jsonl)"
            if stripped.startswith("task_id,")
            else ""
        )
        raise ExportFormatError([f"{name}: not a stepsdk export (expected a JSON object){hint}"])
    first_line = stripped.split("\n", 1)[0]
    raws: list[tuple[str, Any]]
    try:
        whole = json.loads(first_line)
        is_jsonl = isinstance(whole, dict) and "task" in whole
    except (json.JSONDecodeError, RecursionError):
        is_jsonl = False
    if is_jsonl:
        raws = []
        for number, line in enumerate(stripped.split("\n"), start=1):
            if line.strip():
                where = f"{name} line {number}"
                obj = _strict_json(line, where)
                if not isinstance(obj, dict):
                    raise ExportFormatError([f"{where}: must be an object, got {kind_of(obj)}"])
                _check_version(obj, where)
                raws.append((where, obj))
    else:
        obj = _strict_json(stripped, name)
        if not isinstance(obj, dict):
            raise ExportFormatError([f"{name}: must be an object, got {kind_of(obj)}"])
        _check_version(obj, name)
        if not isinstance(obj.get("tasks"), list):
            raise ExportFormatError([f'{name}: "tasks" must be an array, got {kind_of(obj.get("tasks"))}'])
        raws = [(f"{name} tasks[{i}]", raw) for i, raw in enumerate(obj["tasks"])]
    return _validate_all(raws, limits, nul_possible="\\u0000" in text)


def _validate_all(raws: list[tuple[str, Any]], limits: Limits, nul_possible: bool = True) -> list[TaskBundle]:
    errors: list[str] = []
    bundles = [
        b for where, raw in raws if (b := validate_bundle(raw, where, errors, nul_possible)) is not None
    ]
    seen: set[str] = set()
    for bundle in bundles:
        if bundle.task_id in seen:
            errors.append(f"task {bundle.task_id!r} appears more than once")
        seen.add(bundle.task_id)
    step_ids = [s["id"] for b in bundles for s in b.steps]
    if len(set(step_ids)) != len(step_ids):
        errors.append("a step id appears in more than one task")
    if errors:
        raise ExportFormatError(errors, limits.max_errors_shown)
    return bundles


def load_export(path: Path, limits: Limits = Limits()) -> LoadedExport:
    """Read and fully validate an export file (JSON, JSONL or zip). Raises ExportFormatError
    for invalid content and OSError for unreadable files."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _load_zip(path, limits)
    size = path.stat().st_size
    if size > limits.max_data_bytes:
        raise ExportFormatError(
            [f"{path.name}: {size} bytes is more than the {limits.max_data_bytes} accepted"]
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportFormatError(
            [f"{path.name}: not UTF-8 text (byte {exc.start}); is it an export?"]
        ) from None
    return LoadedExport(
        parse_data(text, path.name, limits), kind="jsonl" if path.suffix == ".jsonl" else "json"
    )


def check_zip_entry_name(name: str) -> str | None:
    """Why a zip entry name is refused (path traversal, absolute, odd), or None when fine."""
    if not name or "\x00" in name or CONTROL_CHARS.search(name):
        return "empty name or control characters"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\\" in name:
        return "absolute path or backslash"
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "'..', '.' or empty path segment"
    return None


def _load_zip(path: Path, limits: Limits) -> LoadedExport:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ExportFormatError([f"{path.name}: not a readable zip ({exc})"]) from None
    with zf:
        infos = _check_zip_entries(zf, path.name, limits)
        manifest = _zip_manifest(zf, infos, path.name, limits)
        data_name = manifest["data"]
        text = _read_entry(zf, infos[data_name], limits.max_data_bytes, path.name).decode("utf-8", "replace")
        bundles = parse_data(text, f"{path.name}:{data_name}", limits)
        images = _zip_images(zf, infos, manifest, path.name, limits)
    referenced = screenshot_paths(bundles)
    declared_missing = set(manifest["missing_screenshots"])
    absent = [p for p in referenced if p not in images and p not in declared_missing]
    if absent:
        raise ExportFormatError(
            [f"{path.name}: screenshot {p} is referenced but not in the zip" for p in absent]
        )
    _check_image_rows(bundles, images, manifest["screenshots"], path.name)
    return LoadedExport(bundles, images, [p for p in referenced if p not in images], kind="zip")


def _check_zip_entries(zf: zipfile.ZipFile, name: str, limits: Limits) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise ExportFormatError(
            [f"{name}: {len(infos)} entries is more than the {limits.max_entries} accepted"]
        )
    errors: list[str] = []
    by_name: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        why = check_zip_entry_name(info.filename)
        mode = info.external_attr >> 16
        if why is None and stat.S_ISLNK(mode):
            why = "symbolic link"
        if why is None and info.filename in by_name:
            why = "duplicate entry"
        if why is None and info.flag_bits & 0x1:
            why = "encrypted entry"
        if why:
            errors.append(f"{name}: entry {info.filename!r} refused ({why})")
            continue
        total += info.file_size
        limit = limits.max_image_bytes if info.filename.startswith(SCREENSHOT_DIR) else limits.max_data_bytes
        if info.file_size > limit:
            errors.append(
                f"{name}: entry {info.filename!r} is {info.file_size} bytes uncompressed, more than {limit}"
            )
        by_name[info.filename] = info
    if total > limits.max_total_bytes:
        errors.append(f"{name}: {total} bytes uncompressed in all, more than {limits.max_total_bytes}")
    if errors:
        raise ExportFormatError(errors, limits.max_errors_shown)
    return by_name


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, name: str) -> bytes:
    """Read at most ``limit`` bytes: the header's sizes are not trusted."""
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ExportFormatError([f"{name}: entry {info.filename!r} cannot be read ({exc})"]) from None
    if len(data) > limit:
        raise ExportFormatError([f"{name}: entry {info.filename!r} is larger than {limit} bytes"])
    return data


def _zip_manifest(
    zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], name: str, limits: Limits
) -> dict[str, Any]:
    if MANIFEST not in infos:
        raise ExportFormatError([f"{name}: no {MANIFEST}: not a stepsdk export zip"])
    where = f"{name}:{MANIFEST}"
    raw = _read_entry(zf, infos[MANIFEST], limits.max_data_bytes, name)
    manifest = _strict_json(raw.decode("utf-8", "replace"), where)
    if not isinstance(manifest, dict):
        raise ExportFormatError([f"{where}: must be an object"])
    _check_version(manifest, where)
    problems = []
    data = manifest.get("data")
    if not isinstance(data, str) or data not in DATA_FILES.values() or data not in infos:
        problems.append(
            f'{where}: "data" must name the data file in the zip, got {preview(manifest.get("data"))}'
        )
    elif manifest["data"] == DATA_FILES["csv"]:
        problems.append(f"{where}: CSV exports cannot be imported: export with --format json or jsonl")
    shots = manifest.get("screenshots")
    if not isinstance(shots, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in shots.values()
    ):
        problems.append(f'{where}: "screenshots" must map storage paths to {{size, sha256}}')
    missing = manifest.get("missing_screenshots", [])
    if not isinstance(missing, list) or not all(isinstance(p, str) for p in missing):
        problems.append(f'{where}: "missing_screenshots" must be an array of storage paths')
    if problems:
        raise ExportFormatError(problems)
    allowed = {MANIFEST, manifest["data"]} | {SCREENSHOT_DIR + p for p in shots}
    extra = sorted(n for n in infos if n not in allowed and not (n.endswith("/") and infos[n].file_size == 0))
    if extra:
        raise ExportFormatError(
            [f"{name}: unexpected entry {n!r} (not listed in the manifest)" for n in extra]
        )
    manifest.setdefault("missing_screenshots", [])
    return manifest


def _zip_images(
    zf: zipfile.ZipFile,
    infos: dict[str, zipfile.ZipInfo],
    manifest: dict[str, Any],
    name: str,
    limits: Limits,
) -> dict[str, bytes]:
    images: dict[str, bytes] = {}
    errors: list[str] = []
    for screenshot_path, meta in manifest["screenshots"].items():
        entry = SCREENSHOT_DIR + screenshot_path
        if not is_safe_screenshot_path(screenshot_path) or entry not in infos:
            errors.append(
                f"{name}: manifest screenshot {screenshot_path!r} is not a safe path present in the zip"
            )
            continue
        data = _read_entry(zf, infos[entry], limits.max_image_bytes, name)
        digest = hashlib.sha256(data).hexdigest()
        if digest != meta["sha256"]:
            errors.append(f"{name}: {entry} does not match its sha256 in the manifest (corrupt or altered)")
            continue
        # content_key_problem: else it could replace another screenshot of the backup (and, by
        # resync, of the bucket)
        problem = object_problem(screenshot_path, data) or content_key_problem(screenshot_path, digest)
        if problem:
            errors.append(f"{name}: {entry} {problem}")
            continue
        images[screenshot_path] = data
    if errors:
        raise ExportFormatError(errors, limits.max_errors_shown)
    return images


def content_key_problem(screenshot_path: str, digest: str) -> str | None:
    """Why ``screenshot_path`` is not the content-addressed key of bytes hashing to ``digest``."""
    match = STORAGE_PATH_RE.match(screenshot_path)
    if not match:
        return "is not a content-addressed name (<sha256[0:2]>/<sha256>.webp or .enc)"
    if screenshot_path != schema_storage_path(digest, "." + match.group(1)):
        return f"does not hash to its name (its sha256 is {digest}): altered or crafted"
    return None


def object_problem(screenshot_path: str, data: bytes) -> str | None:
    """``image_problem``, or for an encrypted screenshot (``.enc``, stepsdk/recording/sensitive.py) its header."""
    from stepsdk.recording import sensitive as _sensitive

    return (
        _sensitive.object_problem(data)
        if _sensitive.is_encrypted_path(screenshot_path)
        else image_problem(data)
    )


def image_problem(data: bytes) -> str | None:
    """Why these bytes are not a WebP/PNG/JPEG screenshot (checked with Pillow), or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.verify()
    except Exception as exc:  # Pillow raises many types for broken images
        return f"is not a readable image ({type(exc).__name__})"
    if fmt not in ("WEBP", "PNG", "JPEG"):
        return f"is a {fmt} image; screenshots are WebP, PNG or JPEG"
    return None


def _check_image_rows(
    bundles: list[TaskBundle], images: dict[str, bytes], declared: dict[str, Any], name: str
) -> None:
    """Each screenshot row matches its image; the image's sha256 is the manifest's (``_zip_images``
    checked them equal), so no image is hashed twice."""
    errors = []
    for bundle in bundles:
        for shot in bundle.screenshots:
            data = images.get(shot["screenshot_path"])
            if data is None:
                continue
            if (
                declared[shot["screenshot_path"]]["sha256"] != shot["file_hash"]
                or len(data) != shot["file_size"]
            ):
                errors.append(
                    f"{name}: screenshot row {shot['id']} does not match the image "
                    f"{shot['screenshot_path']} (file_hash/file_size differ)"
                )
    if errors:
        raise ExportFormatError(errors)


# --------------------------------------------------------------------------- importing into the backup

_STEP_DEFAULTS: dict[str, Any] = {"step_data": {}, "metadata": {}, "success": True}
_SHOT_DEFAULTS: dict[str, Any] = {"compressed": True, "metadata": {}}


@dataclass
class ImportReport:
    tasks: int = 0
    steps: int = 0
    screenshots: int = 0
    images: int = 0
    journal: str = ""


def _complete(
    row: dict[str, Any], columns: tuple[str, ...], defaults: dict[str, Any], now: str
) -> dict[str, Any]:
    """Every column present (backup step rows always carry all), defaults for the NOT NULL ones."""
    full = {c: row[c] if c in row else defaults.get(c) for c in columns}
    if full.get("created_at") is None:
        full["created_at"] = now
    return full


_JSON_COLUMNS = ("step_data", "action_result", "metadata")
_TEXT_COLUMNS = ("title", "description", "result", "error_message", "thinking", "error_type", "stack_trace")


def sanitize_bundles(bundles: list[TaskBundle], secrets: tuple[str, ...] = ()) -> int:
    """Apply the recorder's own sanitizer (secret keys, JWTs, bearer tokens and ``secrets`` →
    "[REDACTED]"; FULL-level size limits) to imported rows, in place: a file made elsewhere
    must not carry into the backup what the SDK would never have written. Returns how many
    rows changed."""
    from stepsdk.config import LEVEL_LIMITS
    from stepsdk.model import Level
    from stepsdk.recording.sanitize import Sanitizer

    sanitizer = Sanitizer(LEVEL_LIMITS[Level.FULL], secrets)
    changed = 0
    for bundle in bundles:
        for row in [bundle.task, *bundle.steps, *bundle.screenshots]:
            before = dict(row)
            for key in _JSON_COLUMNS:
                if row.get(key) is not None:
                    row[key] = (
                        sanitizer.object_field(row[key]) if key == "metadata" else sanitizer.field(row[key])
                    )
            for key in _TEXT_COLUMNS:
                if row.get(key) is not None:
                    row[key] = sanitizer.text(row[key])
            changed += row != before
    return changed


def import_into_backup(loaded: LoadedExport, root: Path) -> ImportReport:
    """Write a validated export into the backup folder as one new journal, atomically.

    Images go first (content-addressed, each written atomically); then the whole journal is
    written to a temp file and renamed into ``journal/``: a crash leaves either every record or
    none (at worst some unreferenced images). Tasks get a fresh version so they win over older
    copies and are pending for ``stepsdk resync``.
    """
    from stepsdk.store import backup as _backup

    bad = [p for p in screenshot_paths(loaded.bundles) if not _backup.STORAGE_PATH_RE.match(p)]
    if bad:
        raise ExportFormatError(
            [
                f"screenshot path {p!r} is not a content-addressed key (<sha256[0:2]>/<sha256>.webp or .enc)"
                for p in bad
            ]
        )
    root = Path(root)
    report = ImportReport()
    for screenshot_path, data in loaded.images.items():
        _backup.write_screenshot(root, screenshot_path, data)
        report.images += 1
    name = _backup.new_writer_name("i")
    now = _backup.now_iso()
    version = time.time_ns()
    records: list[dict[str, Any]] = [
        {
            "k": _backup.KIND_OPEN,
            "format": _backup.FORMAT_VERSION,
            "writer": name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": now,
        }
    ]
    for bundle in loaded.bundles:
        task = dict(bundle.task)
        task.setdefault("metadata", {})
        records.append({"k": _backup.KIND_TASK, "v": version, "row": task})
        # Every row gets this import's version, newer than any upload made before: an import
        # means "I want these rows there" (the task may have been deleted in Supabase since),
        # and re-sending is harmless (idempotent upserts that keep the newest version).
        records += [
            {"k": _backup.KIND_STEP, "v": version, "row": _complete(s, STEP_COLUMNS, _STEP_DEFAULTS, now)}
            for s in bundle.steps
        ]
        records += [
            {
                "k": _backup.KIND_SHOT,
                "v": version,
                "row": _complete(r, SCREENSHOT_COLUMNS, _SHOT_DEFAULTS, now),
            }
            for r in bundle.screenshots
        ]
        report.tasks += 1
        report.steps += len(bundle.steps)
        report.screenshots += len(bundle.screenshots)
    records.append({"k": _backup.KIND_CLOSE, "at": now})
    journal = root / _backup.JOURNAL_DIR / f"{name}{_backup.SUFFIX}"
    _backup.private_dir(journal.parent)

    def build(fh: IO[bytes]) -> None:
        for record in records:
            fh.write(_backup.encode_record(record))
        fh.flush()
        os.fsync(fh.fileno())

    write_atomically(journal, build)
    report.journal = str(journal)
    from stepsdk.recording.numbering import seed_counter

    for bundle in loaded.bundles:  # a tracker resuming an imported task numbers after its steps
        numbers = [s["step_number"] for s in bundle.steps if isinstance(s.get("step_number"), int)]
        if numbers:
            seed_counter(root, bundle.task_id, max(numbers) + 1)
    return report
