"""``stepsdk export`` against the local Supabase stack and against a local backup."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.ops import export as _export
from stepsdk.ops import import_ as _import
from stepsdk.store import export_format as _export_format
from tests.cli_data import BUCKET, Dataset, json_out, load_into_backup, load_into_stack, local_env, stack_env


def _dataset() -> Dataset:
    ds = Dataset()
    ds.add_task("t-ok", age=timedelta(days=1), image_seeds=[1, 2, None])
    ds.add_task("t-fail", age=timedelta(days=10), status="failed", agent="other", image_seeds=[1, 3])
    ds.add_task("t-empty", age=timedelta(days=3), status="running", image_seeds=[])
    return ds


def _by_id(rows: list[dict]) -> dict[str, dict]:
    return {r.get("id", r.get("task_id")): r for r in rows}


# --------------------------------------------------------------------------- writers (no backend)


def test_csv_is_one_row_per_step_and_keeps_tasks_without_steps() -> None:
    ds = _dataset()
    bundles = [_export_format.TaskBundle(t, *ds.for_task(t["task_id"])) for t in ds.tasks]
    out = io.StringIO()
    _export.write_csv(bundles, out, "test")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 3 + 2 + 1
    assert list(rows[0]) == _export.csv_columns()
    by_step = {r["step_id"]: r for r in rows if r["step_id"]}
    for step in ds.steps:
        row = by_step[step["id"]]
        assert json.loads(row["step_data"]) == step["step_data"]  # JSON columns round-trip
        assert row["thinking"] == step["thinking"]
        assert row["success"] == ("true" if step["success"] else "false")
        assert row["screenshot_count"] == ("1" if step["screenshot_path"] else "0")
    empty = [r for r in rows if r["task_id"] == "t-empty"]
    assert len(empty) == 1 and empty[0]["step_id"] == "" and empty[0]["task_status"] == "running"


def test_csv_neutralises_formulas_and_keeps_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _dataset()
    step = next(s for s in ds.steps if s["task_id"] == "t-ok")
    step.update(thinking='=HYPERLINK("http://x")', error_message="-cmd|' /C calc'!A0", duration_ms=-2.5)
    step["step_data"] = "@SUM(A1)"  # a JSON string value: text, so escaped too
    backup = tmp_path / "backup"
    load_into_backup(backup, ds)
    local_env(monkeypatch, backup)
    assert main(["export", "t-ok", "--format", "csv"]) == Exit.OK
    row = next(r for r in csv.DictReader(io.StringIO(capsys.readouterr().out)) if r["step_id"] == step["id"])
    assert row["thinking"] == '\'=HYPERLINK("http://x")'
    assert row["error_message"] == "'-cmd|' /C calc'!A0"
    assert row["step_data"] == "'@SUM(A1)"
    assert (row["duration_ms"], row["step_number"]) == ("-2.5", "1")  # real numbers are not escaped


def test_export_help_mentions_formula_escaping(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "formula" in capsys.readouterr().out


def test_json_and_jsonl_envelopes() -> None:
    ds = _dataset()
    bundles = [_export_format.TaskBundle(t, *ds.for_task(t["task_id"])) for t in ds.tasks]
    out = io.StringIO()
    _export.write_json(bundles, out, "test")
    doc = json.loads(out.getvalue())
    assert doc["stepsdk_export"] == 1 and len(doc["tasks"]) == 3
    assert doc["tasks"][0] == {
        "task": ds.tasks[0],
        "steps": ds.for_task("t-ok")[0],
        "screenshots": ds.for_task("t-ok")[1],
    }
    lines = io.StringIO()
    _export.write_jsonl(bundles, lines, "test")
    parsed = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [p["task"]["task_id"] for p in parsed] == ["t-ok", "t-fail", "t-empty"]
    assert all(p["stepsdk_export"] == 1 for p in parsed)
    # both parse back through the strict importer
    assert len(_import.parse_data(out.getvalue(), "x.json")) == 3
    assert len(_import.parse_data(lines.getvalue(), "x.jsonl")) == 3


# --------------------------------------------------------------------------- against a backup


def test_export_from_backup_keeps_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _dataset()
    load_into_backup(tmp_path / "backup", ds)
    local_env(monkeypatch, tmp_path / "backup")
    out = tmp_path / "all.json"
    assert main(["export", "-o", str(out), "--json"]) == Exit.OK
    summary = json_out(capsys.readouterr().out)
    assert (summary["tasks"], summary["steps"], summary["screenshots"]) == (3, 5, 4)
    doc = json.loads(out.read_text())
    got = {b["task"]["task_id"]: b for b in doc["tasks"]}
    for task in ds.tasks:
        steps, shots = ds.for_task(task["task_id"])
        assert got[task["task_id"]]["task"] == task
        assert _by_id(got[task["task_id"]]["steps"]) == _by_id(steps)
        assert _by_id(got[task["task_id"]]["screenshots"]) == _by_id(shots)
    # oldest first, steps in order
    assert [b["task"]["task_id"] for b in doc["tasks"]] == ["t-fail", "t-empty", "t-ok"]
    assert [s["step_number"] for s in got["t-ok"]["steps"]] == [1, 2, 3]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--status", "failed"], {"t-fail"}),
        (["--agent", "bot"], {"t-ok", "t-empty"}),
        (["--since", "5d"], {"t-ok", "t-empty"}),
        (["--until", "2d"], {"t-fail", "t-empty"}),
        (["--since", "5d", "--until", "2d"], {"t-empty"}),
        (["t-ok", "t-empty"], {"t-ok", "t-empty"}),
        (["--since", "2999-01-01"], set()),
    ],
)
def test_export_filters_on_backup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: set[str],
) -> None:
    load_into_backup(tmp_path / "backup", _dataset())
    local_env(monkeypatch, tmp_path / "backup")
    assert main(["export", "--format", "jsonl", *argv]) == Exit.OK
    lines = capsys.readouterr().out.splitlines()
    assert {json.loads(line)["task"]["task_id"] for line in lines} == expected


def test_export_unknown_task_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_into_backup(tmp_path / "backup", _dataset())
    local_env(monkeypatch, tmp_path / "backup")
    out = tmp_path / "x.json"
    assert main(["export", "t-ok", "nope", "-o", str(out)]) == Exit.NO_INPUT
    assert "not found in the backup" in capsys.readouterr().err and "nope" in out.name + "nope"
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "backup"]


def test_export_output_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_into_backup(tmp_path / "backup", _dataset())
    local_env(monkeypatch, tmp_path / "backup")
    assert main(["export", "--with-screenshots"]) == Exit.USAGE
    assert "-o" in capsys.readouterr().err
    assert main(["export", "-o", str(tmp_path / "no" / "such" / "x.json")]) == Exit.CANT_WRITE
    assert main(["export", "-o", str(tmp_path)]) == Exit.USAGE
    assert "is a folder" in capsys.readouterr().err


def test_export_zip_from_backup_holds_the_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _dataset()
    load_into_backup(tmp_path / "backup", ds)
    local_env(monkeypatch, tmp_path / "backup")
    target = tmp_path / "run.zip"
    assert main(["export", "t-ok", "t-fail", "--with-screenshots", "-o", str(target)]) == Exit.OK
    with zipfile.ZipFile(target) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        images = {n[len("screenshots/") :]: zf.read(n) for n in names if n.startswith("screenshots/")}
    assert names >= {"manifest.json", "export.json"}
    # seed 1 is shared by both tasks: stored once
    assert images == {p: ds.images[p] for p in {r["screenshot_path"] for r in ds.shots}}
    assert manifest["missing_screenshots"] == []
    assert all(
        manifest["screenshots"][p]["sha256"] == hashlib.sha256(b).hexdigest() for p, b in images.items()
    )


# --------------------------------------------------------------------------- against Supabase


def test_export_from_supabase_all_formats(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _dataset()
    load_into_stack(stack, ds)
    stack_env(monkeypatch, stack, tmp_path / "unused-backup")
    out = tmp_path / "all.json"
    assert main(["export", "-o", str(out)]) == Exit.OK
    doc = json.loads(out.read_text())
    assert doc["source"] == "supabase" and len(doc["tasks"]) == 3
    got = {b["task"]["task_id"]: b for b in doc["tasks"]}
    for task in ds.tasks:
        steps, shots = ds.for_task(task["task_id"])
        row = got[task["task_id"]]["task"]
        assert {k: row[k] for k in ("title", "agent", "status", "metadata")} == {
            k: task[k] for k in ("title", "agent", "status", "metadata")
        }
        assert {"created_at", "updated_at", "owner_id"} <= set(row)  # every column of the table
        assert set(_by_id(got[task["task_id"]]["steps"])) == {s["id"] for s in steps}
        assert {s["id"]: s["step_data"] for s in got[task["task_id"]]["steps"]} == {
            s["id"]: s["step_data"] for s in steps
        }
        assert set(_by_id(got[task["task_id"]]["screenshots"])) == {r["id"] for r in shots}
    capsys.readouterr()
    assert main(["export", "--format", "csv", "--status", "failed"]) == Exit.OK
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["task_id"] for r in rows] == ["t-fail", "t-fail"]
    assert main(["export", "--format", "jsonl", "--agent", "bot", "--since", "2d"]) == Exit.OK
    assert [json.loads(x)["task"]["task_id"] for x in capsys.readouterr().out.splitlines()] == ["t-ok"]


def test_export_from_supabase_pages_past_the_row_cap(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More rows than one response may carry (db-max-rows 1000): keyset pages get all of them."""
    ds = Dataset()
    ds.add_task("big", image_seeds=[])
    load_into_stack(stack, ds)
    stack.sql("""insert into public.task_steps (id, task_id, step_number, step_type)
                 select gen_random_uuid(), 'big', n, 'action' from generate_series(1, 2345) n""")
    stack.sql("""insert into public.tasks (task_id, status, started_at)
                 select 'many-' || n, 'running', now() - make_interval(secs => n) from generate_series(1, 1100) n""")
    stack_env(monkeypatch, stack, tmp_path / "unused")
    out = tmp_path / "big.json"
    assert main(["export", "big", "-o", str(out)]) == Exit.OK
    steps = json.loads(out.read_text())["tasks"][0]["steps"]
    assert [s["step_number"] for s in steps] == list(range(1, 2346))
    assert main(["export", "--status", "running", "--format", "jsonl", "-o", str(out)]) == Exit.OK
    assert len(out.read_text().splitlines()) == 1100
    wanted = [f"many-{n}" for n in range(1, 121)]  # more ids than one in.(...) filter carries
    assert main(["export", *wanted, "--format", "jsonl", "-o", str(out)]) == Exit.OK
    assert sorted(json.loads(x)["task"]["task_id"] for x in out.read_text().splitlines()) == sorted(wanted)


HOSTILE_IDS = [
    'we,ird "id" (1)',
    "ünï/cøde\\slash",
    "  spaces  ",
    "a.b:c*d",
    "null",
    "%2e%2e",
    "'; drop table tasks; --",
]


def test_export_from_supabase_with_hostile_task_ids(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = Dataset()
    for n, task_id in enumerate(HOSTILE_IDS):
        ds.add_task(task_id, image_seeds=[n, None])
    load_into_stack(stack, ds)
    stack_env(monkeypatch, stack, tmp_path / "unused")
    assert main(["export", "--format", "jsonl"]) == Exit.OK
    got = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted(b["task"]["task_id"] for b in got) == sorted(HOSTILE_IDS)
    assert all(len(b["steps"]) == 2 and len(b["screenshots"]) == 1 for b in got)
    for task_id in HOSTILE_IDS:  # one at a time, by id
        assert main(["export", task_id, "--format", "jsonl"]) == Exit.OK, task_id
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(x)["task"]["task_id"] for x in lines] == [task_id]


def test_export_zip_from_supabase_and_a_missing_object(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _dataset()
    load_into_stack(stack, ds)
    gone = ds.for_task("t-fail")[1][1]["screenshot_path"]  # seed 3: only t-fail uses it
    stack.client().storage.from_(BUCKET).remove([gone])
    stack_env(monkeypatch, stack, tmp_path / "unused")
    target = tmp_path / "run.zip"
    assert main(["export", "t-fail", "--with-screenshots", "-o", str(target), "--json"]) == Exit.FAILED
    summary = json_out(capsys.readouterr().out)
    assert summary["missing_images"] == [gone] and summary["images"] == 1
    with zipfile.ZipFile(target) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["missing_screenshots"] == [gone]
        present = [p for p in manifest["screenshots"]]
        assert [zf.read("screenshots/" + p) for p in present] == [ds.images[p] for p in present]
    # the zip still imports: the image it lacks is declared missing
    loaded = _import.load_export(target)
    assert loaded.missing_images == [gone]


def test_export_from_supabase_with_a_rejected_key(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_env(monkeypatch, stack, tmp_path / "unused")
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "not-a-jwt-secret-value")
    status = main(["export"])
    err = capsys.readouterr().err
    assert status == Exit.CONFIG, err
    assert "rejected the key" in err and "not-a-jwt-secret-value" not in err and err.count("\n") == 1


def test_export_zip_survives_a_dropped_download(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection reset while fetching an image is retried; the zip is complete."""
    ds = _dataset()
    load_into_stack(stack, ds)
    stack_env(monkeypatch, stack, tmp_path / "unused")
    stack.faults.reset_next("GET /storage/v1/object/*", n=1)
    target = tmp_path / "run.zip"
    assert main(["export", "t-ok", "--with-screenshots", "-o", str(target)]) == Exit.OK
    with zipfile.ZipFile(target) as zf:
        assert json.loads(zf.read("manifest.json"))["missing_screenshots"] == []
        assert {n for n in zf.namelist() if n.startswith("screenshots/")} == {
            "screenshots/" + r["screenshot_path"] for r in ds.for_task("t-ok")[1]
        }
    assert stack.faults.injected["reset"] == 1  # the fault really happened


def test_console_script_against_supabase_prints_only_its_result(stack, tmp_path: Path) -> None:
    """The real entry point: stdout is the JSON summary, stderr stays empty (no request logs),
    and the key appears nowhere."""
    import os
    import subprocess
    import sys

    load_into_stack(stack, _dataset())
    env = {
        **os.environ,
        "SUPABASE_URL": stack.url,
        "SUPABASE_SECRET_KEY": stack.service_role_key,
        "STEPSDK_BACKUP_DIR": str(tmp_path / "unused"),
    }
    exe = str(Path(sys.executable).parent / "stepsdk")
    done = subprocess.run(
        [exe, "export", "--json", "-o", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json_out(done.stdout)["tasks"] == 3
    assert stack.service_role_key not in done.stdout + (tmp_path / "x.json").read_text()


def test_export_to_special_files_and_bad_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """-o /dev/null writes through the device (as root a rename would replace it with a file);
    absurd task ids get a usage error, not a request."""
    import stat as stat_module

    load_into_backup(tmp_path / "backup", _dataset())
    local_env(monkeypatch, tmp_path / "backup")
    assert main(["export", "-o", "/dev/null"]) == Exit.OK
    assert main(["export", "--with-screenshots", "-o", "/dev/null"]) == Exit.OK
    assert stat_module.S_ISCHR(Path("/dev/null").stat().st_mode)
    assert main(["export", "x" * 201]) == Exit.USAGE
    assert main(["export", ""]) == Exit.USAGE
    assert "1 to 200 characters" in capsys.readouterr().err
