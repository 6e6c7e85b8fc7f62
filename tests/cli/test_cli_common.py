"""CLI conventions: durations, source selection, one-line errors and exit statuses."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stepsdk.cli import main
from stepsdk.cli._common import CliError, Exit, resolve_source
from stepsdk.ops.retention import interval_literal, parse_duration
from stepsdk.store.backup import BackupStore
from tests.cli_data import Dataset, json_out, load_into_backup, local_env


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
        (" 1W3d ", timedelta(days=10)),
        ("1d12h", timedelta(hours=36)),
    ],
)
def test_parse_duration_accepts_the_documented_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "30",
        "d",
        "30x",
        "-5d",
        "0d",
        "1.5d",
        "30 d",
        "3d-",
        "30dd",
        "９d",
        "99999999999w",
        "999999999w",
        "5300w",
        "1e3d",
        "30d;drop table tasks",
    ],
)
def test_parse_duration_refuses_bad_input_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_parse_duration_type_error_for_non_strings() -> None:
    with pytest.raises(TypeError):
        parse_duration(30)  # type: ignore[arg-type]


def test_interval_literal_is_whole_seconds() -> None:
    assert interval_literal(timedelta(days=1, minutes=1)) == "86460 seconds"


def _ns(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"backup_dir": None, "local": False, **kw})


def test_source_selection() -> None:
    env = {
        "SUPABASE_URL": "http://db.example:1/",
        "SUPABASE_SERVICE_ROLE_KEY": "KEY123",
        "STEPSDK_BACKUP_DIR": "/b",
    }
    src = resolve_source(_ns(), env)
    assert (src.kind, src.url, src.key) == ("supabase", "http://db.example:1", "KEY123")
    assert "KEY123" not in repr(src) and "KEY123" not in str(src)  # the key never shows
    assert resolve_source(_ns(local=True), env).kind == "backup"
    assert resolve_source(_ns(backup_dir=Path("/x")), env).backup_dir == Path("/x")
    assert resolve_source(_ns(), {}).backup_dir == Path("./backup")
    assert resolve_source(_ns(), {"STEPSDK_BACKUP_DIR": "/b"}).backup_dir == Path("/b")
    # the secret key wins over the legacy name
    assert resolve_source(_ns(), {**env, "SUPABASE_SECRET_KEY": "s"}).key == "s"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SUPABASE_URL": "http://x"}, "no key"),
        ({"SUPABASE_URL": "ftp://x", "SUPABASE_SECRET_KEY": "k"}, "must start with http"),
    ],
)
def test_source_configuration_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(CliError, match=message) as err:
        resolve_source(_ns(), env)
    assert err.value.status == Exit.CONFIG


def test_missing_key_is_one_line_and_status_78(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("SUPABASE_SECRET_KEY", raising=False)
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.CONFIG
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "Traceback" not in out.err
    assert json_out(out.out) == {"ok": False, "error": out.err.split("error: ", 1)[1].strip(), "status": 78}


def test_unreachable_backend_is_one_line_and_status_69(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")  # discard port: connection refused
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "secret-key-value")
    for argv in (["export", "--status", "failed"], ["cleanup", "--older-than", "1d"]):
        assert main(argv) == Exit.UNAVAILABLE
        err = capsys.readouterr().err
        assert "cannot reach the backend" in err and "refused" in err.lower()
        assert "secret-key-value" not in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["export"], ["cleanup", "--older-than", "1d"]])
def test_bad_backup_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    local_env(monkeypatch, tmp_path / "unused")
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    assert main([*command, "--backup-dir", str(a_file)]) == Exit.NO_INPUT
    assert "is not a folder" in capsys.readouterr().err
    assert main([*command, "--backup-dir", str(tmp_path / "missing")]) == Exit.NO_INPUT
    assert "does not exist" in capsys.readouterr().err


def _as_nobody(argv: list[str], errors: Any) -> None:
    """Child process: drop root (which reads everything), then run the command."""
    import io

    import storage3.exceptions  # noqa: F401 - imported while still allowed to read everything

    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(argv)
    errors.put((status, err.getvalue()))


@pytest.mark.parametrize("command", [["export"], ["cleanup", "--older-than", "1d"]])
def test_unreadable_backup_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """A folder the user may not read, or inside one: one clear line, status 66 (run as an
    unprivileged user in a child process, since root reads everything)."""
    import multiprocessing
    import tempfile

    local_env(monkeypatch, tmp_path / "unused")
    open_parent = Path(tempfile.mkdtemp(prefix="stepsdk-perm-"))
    open_parent.chmod(0o755)
    locked = open_parent / "locked"
    locked.mkdir(mode=0)
    hidden = tmp_path / "backup"  # tmp_path's parents are private to root
    hidden.mkdir()
    ctx = multiprocessing.get_context("spawn")
    try:
        for folder in (locked, hidden):
            results = ctx.Queue()
            child = ctx.Process(target=_as_nobody, args=([*command, "--backup-dir", str(folder)], results))
            child.start()
            status, err = results.get(timeout=60)
            child.join(timeout=30)
            assert status == Exit.NO_INPUT, err
            assert f"backup folder {folder} is not readable" in err and err.count("\n") == 1
    finally:
        locked.chmod(0o755)
        shutil.rmtree(open_parent)


def test_unreadable_import_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing
    import tempfile

    local_env(monkeypatch, tmp_path / "unused")
    open_parent = Path(tempfile.mkdtemp(prefix="stepsdk-perm-"))
    open_parent.chmod(0o777)
    secret = open_parent / "run.json"
    secret.write_text('{"stepsdk_export": 1, "tasks": []}')
    secret.chmod(0)
    ctx = multiprocessing.get_context("spawn")
    try:
        for target, message in ((secret, "is not readable"), (tmp_path / "x.json", "is not readable")):
            results = ctx.Queue()
            argv = ["import", str(target), "--backup-dir", str(open_parent / "backup")]
            child = ctx.Process(target=_as_nobody, args=(argv, results))
            child.start()
            status, err = results.get(timeout=60)
            child.join(timeout=30)
            assert status == Exit.NO_INPUT, err
            assert message in err and err.count("\n") == 1, err
    finally:
        shutil.rmtree(open_parent)


@pytest.mark.parametrize(
    "argv",
    [
        ["delete", "--agent", "bot", "--before", "soon"],
        ["cleanup", "--older-than", "soon"],
        ["cleanup", "--older-than", "1d", "--batch-size", "0"],
        ["cleanup", "--older-than", "1d", "--batch-size", "many"],
        ["export", "--format", "xml"],
        ["export", "--since", "yesterday"],
        ["export", "--since", "999999999w"],
        ["export", "--until", "2026-13-01"],
        ["export", "--status", "weird"],
        ["import"],
    ],
)
def test_bad_arguments_exit_2_with_one_message(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["export", "import", "cleanup", "delete"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"stepsdk {command} " in out


def test_console_script_exit_statuses(tmp_path: Path) -> None:
    """The real installed ``stepsdk`` entry point, in a subprocess."""
    exe = Path(sys.executable).parent / "stepsdk"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
    env["STEPSDK_BACKUP_DIR"] = str(tmp_path / "backup")
    ds = Dataset()
    ds.add_task("old", age=timedelta(days=40))
    load_into_backup(tmp_path / "backup", ds)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), *argv], capture_output=True, text=True, env=env, timeout=60)

    ok = run("cleanup", "--older-than", "30d", "--dry-run", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json_out(ok.stdout)["task_ids"] == ["old"]
    assert run("cleanup", "--older-than", "30q").returncode == 2
    (tmp_path / "bad.json").write_text('{"stepsdk_export": 2, "tasks": []}')
    bad = run("import", str(tmp_path / "bad.json"))
    assert bad.returncode == 65 and "unsupported export version 2" in bad.stderr


def test_progress_bars_on_a_terminal(tmp_path: Path) -> None:
    """With a terminal on stdout and stderr the rich progress bars run (and go away); the
    commands still succeed. Uses a real pseudo-terminal."""
    import pty

    exe = Path(sys.executable).parent / "stepsdk"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
    env.update(STEPSDK_BACKUP_DIR=str(tmp_path / "backup"), TERM="xterm", COLUMNS="100")
    ds = Dataset()
    ds.add_task("old", age=timedelta(days=40), image_seeds=[1, 2])
    load_into_backup(tmp_path / "backup", ds)
    for argv in (
        ["export", "--with-screenshots", "-o", str(tmp_path / "x.zip")],
        ["cleanup", "--older-than", "30d"],
    ):
        leader, follower = pty.openpty()
        try:
            done = subprocess.run([str(exe), *argv], stdout=follower, stderr=follower, env=env, timeout=60)
            os.close(follower)
            output = b""
            with contextlib.suppress(OSError):  # EIO once the child side is closed and drained
                while chunk := os.read(leader, 65536):
                    output += chunk
        finally:
            os.close(leader)
        assert done.returncode == 0, output.decode(errors="replace")
        assert b"Traceback" not in output
        assert b"\x1b[" in output  # rich drew (and erased) its bar with terminal control codes
    assert (tmp_path / "x.zip").stat().st_size > 0
    assert BackupStore(tmp_path / "backup").read().tasks == {}
