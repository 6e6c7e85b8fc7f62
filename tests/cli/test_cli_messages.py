"""Messages that don't mislead (issue 13): a Supabase URL without a key warns, the demo says where
the run really went, status on a missing folder fails, reports on stdout, --version."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from stepsdk import __version__
from stepsdk import config as _config
from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.config import Config
from tests.cli_data import local_env


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_config, "_warned", set())
    for name in ("SUPABASE_URL", *_config.SUPABASE_KEY_VARS, *_config.MISNAMED_KEY_VARS):
        monkeypatch.delenv(name, raising=False)


def test_url_without_key_warns_and_names_the_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://xyz.supabase.co")
    monkeypatch.setenv("SUPABASE_KEY", "the-misnamed-secret")
    with caplog.at_level(logging.WARNING, "stepsdk.config"):
        config = Config.resolve(backup_dir=tmp_path)
        Config.resolve(backup_dir=tmp_path)  # once per process, not per tracker
    assert not config.remote
    (record,) = caplog.records
    text = record.getMessage()
    assert "SUPABASE_URL is set but no Supabase key" in text and "SUPABASE_KEY is set" in text
    assert "SUPABASE_SECRET_KEY" in text and str(tmp_path) in text and "the-misnamed-secret" not in text


def test_url_without_any_key_and_forced_local(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://xyz.supabase.co")
    with caplog.at_level(logging.WARNING, "stepsdk.config"):
        Config.resolve(supabase_url="", backup_dir=tmp_path)  # "" = local on purpose (the viewer): quiet
        assert not caplog.records
        Config.resolve(backup_dir=tmp_path)
    assert "set SUPABASE_SECRET_KEY or SUPABASE_SERVICE_ROLE_KEY" in caplog.records[0].getMessage()
    caplog.clear()
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "k" * 20)
    with caplog.at_level(logging.WARNING, "stepsdk.config"):
        assert Config.resolve(backup_dir=tmp_path).remote
    assert not caplog.records


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"stepsdk {__version__}"


def test_status_on_a_missing_folder_fails_and_reports_go_to_stdout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local_env(monkeypatch, tmp_path / "nope")
    assert main(["status"]) == Exit.NO_INPUT
    captured = capsys.readouterr()
    assert f"backup folder {tmp_path / 'nope'} does not exist" in captured.err and captured.out == ""
    (tmp_path / "nope").mkdir()
    assert main(["status"]) == Exit.OK
    captured = capsys.readouterr()
    assert captured.out.startswith("backend: local mode") and "backup: " in captured.out


def test_demo_says_where_the_run_went_when_supabase_is_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "k" * 24)
    assert main(["demo", "--no-view", "--pace", "0", "--backup-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Supabase at http://127.0.0.1:9 did not take it" in out
    assert f"it is in the local backup in {tmp_path.resolve()}" in out and "k" * 24 not in out
