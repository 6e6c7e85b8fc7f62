"""``stepsdk import``: strict validation (nothing half-imported), idempotence, and the round trip
export → delete → import → resync → export against the local Supabase stack."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.store.backup import BackupStore
from tests.cli_data import (
    BUCKET,
    Dataset,
    counts,
    json_out,
    load_into_backup,
    load_into_stack,
    local_env,
    stack_env,
    webp,
)


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A JSON export and a zip export of two tasks (from a backup), plus the dataset."""
    ds = Dataset()
    ds.add_task("share-me", image_seeds=[1, 2, None])
    ds.add_task("other", status="failed", image_seeds=[1])
    load_into_backup(tmp_path / "src", ds)
    local_env(monkeypatch, tmp_path / "dest")
    for name, extra in (
        ("run.json", []),
        ("run.jsonl", ["--format", "jsonl"]),
        ("run.zip", ["--with-screenshots"]),
    ):
        assert (
            main(["export", "--backup-dir", str(tmp_path / "src"), "-o", str(tmp_path / name), *extra]) == 0
        )
    return {
        "ds": ds,
        "json": tmp_path / "run.json",
        "jsonl": tmp_path / "run.jsonl",
        "zip": tmp_path / "run.zip",
        "dest": tmp_path / "dest",
    }


def _snapshot_counts(root: Path) -> tuple[int, int, int]:
    snap = BackupStore(root).read()
    assert snap.problems == []
    return (len(snap.tasks), sum(map(len, snap.steps.values())), sum(map(len, snap.screenshots.values())))


def _journal_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("kind", ["json", "jsonl", "zip"])
def test_import_into_backup_is_complete_and_idempotent(
    exported: dict[str, Any], kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dest, ds = exported["dest"], exported["ds"]
    assert main(["import", str(exported[kind]), "--json"]) == Exit.OK
    captured = capsys.readouterr()
    summary = json_out(captured.out)
    assert (summary["tasks"], summary["steps"], summary["screenshots"]) == (2, 4, 3)
    assert summary["images"] == (2 if kind == "zip" else 0)
    # without the images, the import says so (resync could not upload them)
    assert sorted(summary["missing_images"]) == ([] if kind == "zip" else sorted(ds.images))
    assert ("are neither in the file" in captured.err) == (kind != "zip")
    assert main(["import", str(exported[kind])]) == Exit.OK  # twice: no duplicates
    assert _snapshot_counts(dest) == (2, 4, 3)
    store = BackupStore(dest)
    snap = store.read()
    for task in ds.tasks:
        steps, shots = ds.for_task(task["task_id"])
        assert snap.tasks[task["task_id"]] == task
        assert {s["id"]: s for s in snap.steps[task["task_id"]]} == {s["id"]: s for s in steps}
        assert {r["id"]: r for r in snap.screenshots[task["task_id"]]} == {r["id"]: r for r in shots}
    # imported rows are pending, so `stepsdk resync` uploads them
    assert {t["task_id"] for t in snap.pending_tasks()} == {"share-me", "other"}
    assert len(snap.pending_steps()) == 4
    if kind == "zip":
        for path, data in ds.images.items():
            file = store.screenshot_file(path)
            assert file is not None and file.read_bytes() == data


# --------------------------------------------------------------------------- hostile data files


def _doc(exported: dict[str, Any]) -> dict[str, Any]:
    return json.loads(exported["json"].read_text())


def _mutations() -> list[tuple[str, Any, str]]:
    def task(key: str, value: Any) -> Any:
        return lambda d: d["tasks"][0]["task"].__setitem__(key, value)

    def step(key: str, value: Any) -> Any:
        return lambda d: d["tasks"][0]["steps"][0].__setitem__(key, value)

    def shot(key: str, value: Any) -> Any:
        return lambda d: d["tasks"][0]["screenshots"][0].__setitem__(key, value)

    return [
        ("version 2", lambda d: d.__setitem__("stepsdk_export", 2), "unsupported export version 2"),
        ("version as string", lambda d: d.__setitem__("stepsdk_export", "1"), "unsupported export version"),
        ("version true", lambda d: d.__setitem__("stepsdk_export", True), "unsupported export version"),
        ("no version", lambda d: d.pop("stepsdk_export"), "not a stepsdk export"),
        ("tasks not a list", lambda d: d.__setitem__("tasks", {}), '"tasks" must be an array'),
        ("bundle not an object", lambda d: d["tasks"].append(3), "must be an object"),
        ("no task id", lambda d: d["tasks"][0]["task"].pop("task_id"), "task_id: is required"),
        ("task id too long", task("task_id", "x" * 201), "length must be 1..200"),
        ("task id control char", task("task_id", "a\nb"), "control characters"),
        ("task id number", task("task_id", 7), "must be a string"),
        ("bad status", task("status", "done"), "status: must be one of"),
        ("bad started_at", task("started_at", "yesterday"), "ISO-8601"),
        ("naive started_at", task("started_at", "2026-01-01T00:00:00"), "with an offset"),
        ("finished before started", task("finished_at", "2000-01-01T00:00:00+00:00"), "before started_at"),
        ("done without finished_at", task("finished_at", None), "finished_at: is required"),
        ("metadata list", task("metadata", [1]), "metadata: must be an object"),
        ("metadata null", task("metadata", None), "metadata: must not be null"),
        ("unknown task column", task("password", "x"), "unknown column(s) 'password'"),
        ("NUL in title", task("title", "a\x00b"), "NUL"),
        ("NUL deep in metadata", task("metadata", {"a": [{"b": "x\x00"}]}), "NUL"),
        ("owner not uuid", task("owner_id", "alice"), "must be a UUID"),
        ("step id not uuid", step("id", "step-1"), "must be a UUID"),
        ("step of another task", step("task_id", "other"), "must be the task's id"),
        ("step number zero", step("step_number", 0), "integer in 1.."),
        ("step number string", step("step_number", "1"), "integer in 1.."),
        ("step number bool", step("step_number", True), "integer in 1.."),
        ("step number huge", step("step_number", 2**40), "integer in 1.."),
        ("bad step type", step("step_type", "dance"), "step_type: must be one of"),
        ("negative duration", step("duration_ms", -1), "number >= 0"),
        ("success as string", step("success", "yes"), "true or false"),
        ("traversal screenshot_path", step("screenshot_path", "../../etc/passwd"), "not a safe relative"),
        (
            "duplicate step number",
            lambda d: d["tasks"][0]["steps"][1].__setitem__("step_number", 1),
            "duplicate step_number",
        ),
        (
            "duplicate step id",
            lambda d: d["tasks"][0]["steps"][1].__setitem__("id", d["tasks"][0]["steps"][0]["id"]),
            "duplicate id",
        ),
        (
            "duplicate task",
            lambda d: d["tasks"].append(copy.deepcopy(d["tasks"][0])),
            "appears more than once",
        ),
        (
            "screenshot of unknown step",
            shot("step_id", "00000000-0000-4000-8000-000000000000"),
            "refers to no step",
        ),
        ("absolute storage path", shot("screenshot_path", "/etc/passwd"), "not a safe relative"),
        ("bad file hash", shot("file_hash", "ABC"), "64 lowercase hex"),
        ("negative file size", shot("file_size", -5), "integer in 0.."),
        ("steps not a list", lambda d: d["tasks"][0].__setitem__("steps", "nope"), "steps: must be an array"),
        ("unknown bundle key", lambda d: d["tasks"][0].__setitem__("extra", 1), "unknown key(s) 'extra'"),
    ]


@pytest.mark.parametrize(
    ("mutate", "message"), [pytest.param(m, msg, id=name) for name, m, msg in _mutations()]
)
def test_import_refuses_invalid_content_and_imports_nothing(
    exported: dict[str, Any], tmp_path: Path, mutate: Any, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc(exported)
    mutate(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["import", str(bad)]) == Exit.DATA
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _journal_files(exported["dest"]) == []  # nothing half-imported


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n garbage", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
        (b"task_id,task_title\nx,y\n", "CSV exports cannot be imported"),
        (b'{"stepsdk_export": 1, "tasks": [', "not valid JSON"),
        (b'{"stepsdk_export": 1, "tasks": [], "tasks": []}', "duplicate key 'tasks'"),
        (
            b'{"stepsdk_export": 1, "tasks": [{"task": {"task_id": "a", "status": "running", '
            b'"started_at": "2026-01-01T00:00:00+00:00", "metadata": {"x": NaN}}}]}',
            "NaN is not valid JSON",
        ),
        (b'{"stepsdk_export": 1, "tasks": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (
            b'{"stepsdk_export": 1, "tasks": [{"task": {"task_id": "a", "status": "running", '
            b'"started_at": "2026-01-01T00:00:00+00:00", "metadata": {"x": 1e999}}}]}',
            "number 1e999 is out of range",
        ),
    ],
)
def test_import_refuses_broken_files(
    exported: dict[str, Any], tmp_path: Path, content: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    assert main(["import", str(bad)]) == Exit.DATA
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert _journal_files(exported["dest"]) == []


def test_import_refuses_a_bad_jsonl_line(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = exported["jsonl"].read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + lines[1][:-5] + "\n")
    assert main(["import", str(bad)]) == Exit.DATA
    assert "line 2" in capsys.readouterr().err
    assert _journal_files(exported["dest"]) == []


def test_import_missing_or_unreadable_inputs(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(tmp_path / "none.json")]) == Exit.NO_INPUT
    assert main(["import", str(tmp_path)]) == Exit.NO_INPUT
    assert "is not a file" in capsys.readouterr().err
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert main(["import", str(exported["json"]), "--backup-dir", str(not_a_dir)]) == Exit.NO_INPUT
    assert "is not a folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- hostile zips


def _rezip(src: Path, dest: Path, edit: Any) -> Path:
    """Copy the zip's entries into a new one, letting ``edit(zf_out, entries)`` change them."""
    with zipfile.ZipFile(src) as zin:
        entries = {i.filename: zin.read(i) for i in zin.infolist()}
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        edit(zout, entries)
    return dest


def _write_all(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    for name, data in entries.items():
        zout.writestr(name, data)


def _manifest(entries: dict[str, bytes]) -> dict[str, Any]:
    return json.loads(entries["manifest.json"])


def _traversal(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    _write_all(zout, entries)
    zout.writestr("../evil.txt", b"x")


def _absolute(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    _write_all(zout, entries)
    zout.writestr("/tmp/evil.txt", b"x")


def _symlink(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    _write_all(zout, entries)
    info = zipfile.ZipInfo("screenshots/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zout.writestr(info, "/etc/passwd")


def _bomb(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    _write_all(zout, entries)
    zout.writestr("screenshots/aa/bomb.webp", b"\0" * (26 * 1024 * 1024))  # ~26 KB compressed


def _manifest_traversal(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    manifest = _manifest(entries)
    manifest["screenshots"]["../../x.webp"] = {"size": 1, "sha256": "0" * 64}
    entries["manifest.json"] = json.dumps(manifest).encode()
    _write_all(zout, entries)


def _unlisted(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    _write_all(zout, entries)
    zout.writestr("screenshots/ab/extra.webp", webp(9))


def _tampered_image(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    name = next(n for n in entries if n.startswith("screenshots/"))
    entries[name] = webp(77)
    _write_all(zout, entries)


def _swap_image(zout: zipfile.ZipFile, entries: dict[str, bytes], data: bytes) -> None:
    """Replace the first image with ``data`` and list its real sha256: only the content is wrong."""
    name = next(n for n in entries if n.startswith("screenshots/"))
    entries[name] = data
    manifest = _manifest(entries)
    manifest["screenshots"][name[len("screenshots/") :]]["sha256"] = hashlib.sha256(data).hexdigest()
    entries["manifest.json"] = json.dumps(manifest).encode()
    _write_all(zout, entries)


def _not_an_image(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    _swap_image(zout, entries, b"<script>alert(1)</script>")


def _gif_image(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "GIF")
    _swap_image(zout, entries, buf.getvalue())


def _image_missing(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    name = next(n for n in entries if n.startswith("screenshots/"))
    del entries[name]
    manifest = _manifest(entries)
    del manifest["screenshots"][name[len("screenshots/") :]]
    entries["manifest.json"] = json.dumps(manifest).encode()
    _write_all(zout, entries)


def _no_manifest(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    del entries["manifest.json"]
    _write_all(zout, entries)


def _manifest_data_list(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    manifest = _manifest(entries)
    manifest["data"] = ["export.json"]
    manifest["screenshots"] = {"x": "not an object"}
    entries["manifest.json"] = json.dumps(manifest).encode()
    _write_all(zout, entries)


def _crafted_replacement(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    """Another real image under an existing screenshot's name, with the manifest and the rows made
    to agree: only the content-addressed name betrays it (it would replace that screenshot)."""
    name = next(n for n in entries if n.startswith("screenshots/"))
    key, data = name[len("screenshots/") :], webp(77)
    entries[name] = data
    manifest = _manifest(entries)
    manifest["screenshots"][key] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    entries["manifest.json"] = json.dumps(manifest).encode()
    doc = json.loads(entries["export.json"])
    for bundle in doc["tasks"]:
        for shot in bundle["screenshots"]:
            if shot["screenshot_path"] == key:
                shot.update(file_hash=hashlib.sha256(data).hexdigest(), file_size=len(data))
    entries["export.json"] = json.dumps(doc).encode()
    _write_all(zout, entries)


def _extra_bad_name(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    """An extra image no row uses, listed in the manifest under a name that is no content key."""
    data = webp(9)
    entries["screenshots/ab/extra.webp"] = data
    manifest = _manifest(entries)
    manifest["screenshots"]["ab/extra.webp"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    entries["manifest.json"] = json.dumps(manifest).encode()
    _write_all(zout, entries)


def _bad_data(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
    doc = json.loads(entries["export.json"])
    doc["tasks"][0]["task"]["status"] = "weird"
    entries["export.json"] = json.dumps(doc).encode()
    _write_all(zout, entries)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_traversal, "'../evil.txt' refused ('..'"),
        (_absolute, "'/tmp/evil.txt' refused (absolute path"),
        (_symlink, "refused (symbolic link)"),
        (_bomb, "more than 26214400"),
        (_manifest_traversal, "is not a safe path"),
        (_unlisted, "unexpected entry 'screenshots/ab/extra.webp'"),
        (_tampered_image, "does not match its sha256"),
        (_not_an_image, "is not a readable image"),
        (_gif_image, "is a GIF image"),
        (_crafted_replacement, "does not hash to its name"),
        (_extra_bad_name, "ab/extra.webp is not a content-addressed name"),
        (_image_missing, "is referenced but not in the zip"),
        (_no_manifest, "no manifest.json"),
        (_manifest_data_list, '"data" must name the data file'),
        (_bad_data, "status: must be one of"),
    ],
)
def test_import_refuses_hostile_zips(
    exported: dict[str, Any], tmp_path: Path, edit: Any, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _rezip(exported["zip"], tmp_path / "bad.zip", edit)
    assert main(["import", str(bad)]) == Exit.DATA
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert _journal_files(exported["dest"]) == []
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_import_refuses_a_truncated_zip(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = exported["zip"].read_bytes()
    bad = tmp_path / "cut.zip"
    bad.write_bytes(data[: len(data) // 2])
    assert main(["import", str(bad)]) == Exit.DATA
    assert "not a readable zip" in capsys.readouterr().err
    assert _journal_files(exported["dest"]) == []


# --------------------------------------------------------------------------- round trip


def _strip_volatile(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "exported_at"}


def test_round_trip_export_delete_import_resync_export(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = Dataset()
    ds.add_task("failing-run", status="failed", image_seeds=[1, 2, None, 1])
    ds.add_task("keeper", image_seeds=[2])  # shares image 2: it must survive the delete
    load_into_stack(stack, ds)
    stack_env(monkeypatch, stack, tmp_path / "teammate-backup")
    first = tmp_path / "first.zip"
    assert main(["export", "failing-run", "--with-screenshots", "-o", str(first)]) == Exit.OK
    before = counts(stack)

    # delete it (rows cascade) and its objects no other task uses
    stack.sql("delete from public.tasks where task_id = 'failing-run'")
    only_mine = {r["screenshot_path"] for r in ds.shots if r["task_id"] == "failing-run"} - {
        r["screenshot_path"] for r in ds.shots if r["task_id"] == "keeper"
    }
    stack.client().storage.from_(BUCKET).remove(sorted(only_mine))
    assert counts(stack) == {"tasks": 1, "task_steps": 1, "step_screenshots": 1}

    assert main(["import", str(first)]) == Exit.OK
    capsys.readouterr()
    assert main(["resync", "--json"]) == Exit.OK, capsys.readouterr().err
    capsys.readouterr()
    assert counts(stack) == before  # nothing lost, nothing duplicated
    for path in only_mine:  # the objects are back, byte for byte
        assert stack.client().storage.from_(BUCKET).download(path) == ds.images[path]

    second = tmp_path / "second.zip"
    assert main(["export", "failing-run", "--with-screenshots", "-o", str(second)]) == Exit.OK
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        for name in a.namelist():
            if name == "export.json":
                one, two = json.loads(a.read(name)), json.loads(b.read(name))
                assert _strip_volatile(one) == _strip_volatile(two)
            else:
                assert a.read(name) == b.read(name), name

    # and importing + resyncing again changes nothing
    assert main(["import", str(first)]) == Exit.OK
    assert main(["resync"]) == Exit.OK
    assert counts(stack) == before


_ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    "",
    "x",
    "\x00",
    [],
    {},
    [None],
    {"": None},
    "../..",
    "9" * 300,
]


def _mutate(node: Any, rng: Any) -> None:
    """Change one random place of a JSON tree: drop a key, change a value's type, or add a key."""
    path: list[Any] = []
    while isinstance(node, dict | list) and node and rng.random() < 0.8:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        if not isinstance(node[key], dict | list) or not node[key]:
            break
        path.append(key)
        node = node[key]
    if isinstance(node, dict) and node:
        key = rng.choice(list(node))
        action = rng.randrange(3)
        if action == 0:
            del node[key]
        elif action == 1:
            node[key] = copy.deepcopy(rng.choice(_ODD_VALUES))
        else:
            node[rng.choice(["zz", key + "_", "id"])] = copy.deepcopy(rng.choice(_ODD_VALUES))
    elif isinstance(node, list) and node:
        node[rng.randrange(len(node))] = copy.deepcopy(rng.choice(_ODD_VALUES))


def test_import_never_crashes_on_random_damage(exported: dict[str, Any], tmp_path: Path) -> None:
    """500 randomly damaged exports: each is refused with ExportFormatError, or it is valid and then
    imports into a backup that reads back whole (no skipped records)."""
    import random

    from stepsdk.ops import import_ as _import

    rng = random.Random(1234)
    original = _doc(exported)
    refused = 0
    for i in range(500):
        doc = copy.deepcopy(original)
        for _ in range(rng.randint(1, 3)):
            _mutate(doc, rng)
        try:
            bundles = _import.parse_data(json.dumps(doc), "fuzz.json")
        except _import.ExportFormatError:
            refused += 1
            continue
        root = tmp_path / f"b{i}"
        _import.import_into_backup(_import.LoadedExport(bundles), root)
        snap = BackupStore(root).read()
        assert snap.problems == []
        assert sum(map(len, snap.steps.values())) == sum(len(b.steps) for b in bundles)
        assert sum(map(len, snap.screenshots.values())) == sum(len(b.screenshots) for b in bundles)
    assert refused > 200  # the damage is real: most of it must be caught


def test_what_import_accepts_the_database_accepts(stack, exported: dict[str, Any]) -> None:
    """Damaged exports that pass validation are stored by PostgreSQL as they are (no constraint
    errors later at resync): the validator is at least as strict as the schema."""
    import random

    from stepsdk.ops import import_ as _import

    rng = random.Random(99)
    original = _doc(exported)
    client = stack.client()
    accepted = 0
    db = psycopg.connect(stack.db_url, autocommit=True)  # one connection: truncating is then ~1 ms
    for _ in range(40):
        doc = copy.deepcopy(original)
        _mutate(doc, rng)
        try:
            bundles = _import.parse_data(json.dumps(doc), "fuzz.json")
        except _import.ExportFormatError:
            continue
        accepted += 1
        db.execute("truncate public.tasks, public.task_steps, public.step_screenshots cascade")
        for bundle in bundles:
            client.table("tasks").upsert(bundle.task).execute()
            if bundle.steps:
                client.table("task_steps").upsert(bundle.steps).execute()
            if bundle.screenshots:
                client.table("step_screenshots").upsert(bundle.screenshots).execute()
    db.close()
    assert accepted > 8


def test_import_makes_rows_pending_even_when_this_folder_uploaded_them_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An import means "I want these rows there" (the task may have been deleted in Supabase):
    every row and object of the file is pending for resync, whatever the folder uploaded before."""
    from stepsdk.store import backup as _backup

    root = tmp_path / "backup"
    ds = Dataset()
    ds.add_task("uploaded", image_seeds=[1, None])
    load_into_backup(root, ds)
    acks = _backup.JournalWriter(root)
    acks.append(
        [
            {"k": "ack", "t": "tasks", "v": BackupStore(root).read().task_versions},
            {"k": "ack", "t": "task_steps", "ids": [s["id"] for s in ds.steps]},
            {"k": "ack", "t": "step_screenshots", "ids": [r["id"] for r in ds.shots]},
            {"k": "ack", "t": "objects", "ids": list(ds.images)},
        ]
    )
    acks.close()
    snap = BackupStore(root).read()
    assert not snap.pending_steps() and not snap.pending_screenshots() and not snap.pending_objects()
    local_env(monkeypatch, root)
    assert main(["export", "-o", str(tmp_path / "run.json")]) == Exit.OK
    assert main(["import", str(tmp_path / "run.json"), "--json"]) == Exit.OK
    assert "will not send them again" not in capsys.readouterr().err
    snap = BackupStore(root).read()
    assert len(snap.pending_steps()) == 2 and len(snap.pending_screenshots()) == 1
    assert snap.pending_objects() == sorted(ds.images) and [t["task_id"] for t in snap.pending_tasks()] == [
        "uploaded"
    ]


def test_minimal_rows_from_the_database_round_trip(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows with only the required columns set (every nullable column null) are valid exports:
    the validator is no stricter than the schema."""
    stack.sql("insert into public.tasks (task_id) values ('minimal')")
    stack.sql("""insert into public.task_steps (id, task_id, step_number, step_type)
                 values ('11111111-2222-4333-8444-555555555555', 'minimal', 1, 'thinking')""")
    stack.sql(
        """insert into public.step_screenshots (task_id, step_id, screenshot_path, file_size, file_hash)
                 values ('minimal', '11111111-2222-4333-8444-555555555555', %s, 0, %s)""",
        ("ab/" + "ab" * 32 + ".webp", "ab" * 32),
    )
    stack_env(monkeypatch, stack, tmp_path / "backup")
    assert main(["export", "minimal", "-o", str(tmp_path / "m.json")]) == Exit.OK
    row = json.loads((tmp_path / "m.json").read_text())["tasks"][0]["steps"][0]
    assert row["started_at"] is None and row["duration_ms"] is None and row["thinking"] is None
    assert main(["import", str(tmp_path / "m.json")]) == Exit.OK, capsys.readouterr().err
    assert _snapshot_counts(tmp_path / "backup") == (1, 1, 1)


def test_import_redacts_secrets_like_the_recorder(
    exported: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A file made elsewhere may carry secrets the SDK would have redacted: they never reach the
    backup (and so never Supabase)."""
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "sk-live-THE-PROJECT-KEY-123")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    doc = _doc(exported)
    step = doc["tasks"][0]["steps"][0]
    step["step_data"] = {
        "password": "hunter2",
        "nested": {"api_key": "abc"},
        "max_tokens": 512,
        "note": "use sk-live-THE-PROJECT-KEY-123 now",
    }
    step["thinking"] = f"the token is {jwt}"
    step["action_result"] = {"headers": {"Authorization": "Bearer abcdefghijklmnop"}}
    bad = tmp_path / "secrets.json"
    bad.write_text(json.dumps(doc))
    assert main(["import", str(bad), "--json"]) == Exit.OK
    captured = capsys.readouterr()
    assert json_out(captured.out)["sanitized_rows"] == 1 and "stored redacted" in captured.err
    stored = next(
        s
        for s in BackupStore(exported["dest"]).read().steps[doc["tasks"][0]["task"]["task_id"]]
        if s["id"] == step["id"]
    )
    assert stored["step_data"] == {
        "password": "[REDACTED:password]",
        "nested": {"api_key": "[REDACTED:apikey]"},
        "max_tokens": 512,
        "note": "use [REDACTED:configured] now",
    }
    assert stored["thinking"] == "the token is [REDACTED:jwt]"
    assert stored["action_result"] == {"headers": {"Authorization": "[REDACTED:authorization]"}}
    text = b"".join(p.read_bytes() for p in exported["dest"].rglob("*") if p.is_file())
    for secret in (b"hunter2", b"THE-PROJECT-KEY", jwt.encode(), b"abcdefghijklmnop"):
        assert secret not in text


def test_zip_with_jsonl_imports_and_zip_with_csv_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = Dataset()
    ds.add_task("z", image_seeds=[4, 5])
    load_into_backup(tmp_path / "src", ds)
    local_env(monkeypatch, tmp_path / "dest")
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"run-{fmt}.zip"
        assert (
            main(
                [
                    "export",
                    "--backup-dir",
                    str(tmp_path / "src"),
                    "--format",
                    fmt,
                    "--with-screenshots",
                    "-o",
                    str(out),
                ]
            )
            == Exit.OK
        )
    assert main(["import", str(tmp_path / "run-csv.zip")]) == Exit.DATA
    assert "CSV exports cannot be imported" in capsys.readouterr().err
    assert _journal_files(tmp_path / "dest") == []
    assert main(["import", str(tmp_path / "run-jsonl.zip")]) == Exit.OK
    assert _snapshot_counts(tmp_path / "dest") == (1, 2, 2)
    assert {p for p in ds.images if BackupStore(tmp_path / "dest").screenshot_file(p)} == set(ds.images)


def _lying_sizes(zip_path: Path, entry: str, declared: int) -> None:
    """Patch an entry's uncompressed size in its local header and central directory record."""
    import struct

    data = bytearray(zip_path.read_bytes())
    name = entry.encode()
    for signature, size_offset, name_offset in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            name_len = struct.unpack_from("<H", data, start + (26 if signature == b"PK\x03\x04" else 28))[0]
            if bytes(data[start + name_offset : start + name_offset + name_len]) == name:
                struct.pack_into("<I", data, start + size_offset, declared)
            start += 4
    zip_path.write_bytes(bytes(data))


def test_import_refuses_an_entry_lying_about_its_size(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bomb whose header claims a tiny size: reading stops at the claimed size and the CRC
    check fails; nothing is inflated past it, nothing is imported."""
    bomb = b"\0" * (8 * 1024 * 1024)
    target: dict[str, str] = {}

    def swap_in_bomb(zout: zipfile.ZipFile, entries: dict[str, bytes]) -> None:
        name = target["name"] = next(n for n in entries if n.startswith("screenshots/"))
        entries[name] = bomb  # listed in the manifest, with the bomb's own hash
        manifest = _manifest(entries)
        manifest["screenshots"][name[len("screenshots/") :]]["sha256"] = hashlib.sha256(bomb).hexdigest()
        entries["manifest.json"] = json.dumps(manifest).encode()
        _write_all(zout, entries)

    bad = _rezip(exported["zip"], tmp_path / "liar.zip", swap_in_bomb)
    _lying_sizes(bad, target["name"], 100)
    with zipfile.ZipFile(bad) as zf:
        assert zf.getinfo(target["name"]).file_size == 100  # the lie is in place
    assert main(["import", str(bad)]) == Exit.DATA
    err = capsys.readouterr().err
    assert "cannot be read (Bad CRC-32" in err and err.count("\n") == 1, err
    assert _journal_files(exported["dest"]) == []


@pytest.mark.parametrize("kind", ["jsonl", "zip"])
def test_import_from_stdin(
    exported: dict[str, Any], kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(exported[kind].read_bytes())))
    assert main(["import", "-", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["tasks"] == 2
    assert _snapshot_counts(exported["dest"]) == (2, 4, 3)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"not an export")))
    assert main(["import", "-"]) == Exit.DATA
    err = capsys.readouterr().err
    assert "error: stdin is not a valid stepsdk export: stdin: not a stepsdk export" in err, err
