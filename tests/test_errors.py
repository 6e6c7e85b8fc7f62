"""stepsdk.errors: one public hierarchy under StepSDKError, the built-in bases kept (so existing
``except ValueError`` clauses still catch), the CLI's one mapping from error types to exit statuses."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import stepsdk
from stepsdk import errors
from stepsdk.backend import sink
from stepsdk.cli._common import CliError, Exit, exit_status, run_safely
from stepsdk.ops import alerts, import_check, prices, resync
from stepsdk.recording import screenshots, sensitive
from stepsdk.share import animation


def test_the_hierarchy_and_its_builtin_bases() -> None:
    for name in (
        "StepSDKError",
        "ConfigurationError",
        "BackendUnavailableError",
        "ResyncError",
        "ExportFormatError",
        "ScreenshotError",
    ):
        assert getattr(stepsdk, name) is getattr(errors, name) and name in stepsdk.__all__
        assert issubclass(getattr(errors, name), errors.StepSDKError)
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.ExportFormatError, ValueError)
    # the existing names are the same classes or subclasses: users' except clauses keep working
    assert screenshots.ScreenshotError is errors.ScreenshotError
    assert import_check.ExportFormatError is errors.ExportFormatError
    assert resync.ResyncError is errors.ResyncError
    assert issubclass(sink.BackendUnavailable, errors.BackendUnavailableError)
    assert issubclass(sink.BackendUnavailable, sink.SinkError)
    for config_error in (sensitive.ScreenshotKeyError, prices.PriceError, alerts.RulesError):
        assert issubclass(config_error, errors.ConfigurationError) and issubclass(config_error, ValueError)
    assert issubclass(resync.ResyncNotConfigured, errors.ConfigurationError)
    assert issubclass(resync.ResyncBackendUnavailable, errors.BackendUnavailableError)
    assert issubclass(animation.NothingToAnimate, errors.StepSDKError)


def test_bad_configuration_raises_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(stepsdk.ConfigurationError, match="unknown level"):
        stepsdk.Config.resolve(backup_dir=tmp_path, level="LOUD")
    with pytest.raises(ValueError, match="owner_id"):  # still a ValueError
        stepsdk.Config.resolve(backup_dir=tmp_path, owner_id="not-a-uuid")


def test_screenshot_error_reasons() -> None:
    err = errors.ScreenshotError("corrupt", "cannot read the image header")
    assert err.to_dict() == {"reason": "corrupt", "message": "cannot read the image header"}
    assert screenshots.REASONS == errors.SCREENSHOT_REASONS
    with pytest.raises(ValueError, match="unknown ScreenshotError reason"):
        errors.ScreenshotError("nope", "x")


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (resync.ResyncNotConfigured("Supabase is not configured"), Exit.CONFIG),
        (resync.ResyncBackendUnavailable("Supabase at http://x is not usable"), Exit.UNAVAILABLE),
        (errors.ResyncError("backup folder /x is not a folder"), Exit.UNAVAILABLE),
        (prices.PriceError("bad price table"), Exit.CONFIG),
        (errors.ExportFormatError(["tasks[0].task_id is required"]), Exit.DATA),
        (sink.BackendUnavailable("down"), Exit.UNAVAILABLE),
        (errors.ScreenshotError("empty", "no bytes"), Exit.FAILED),
        (CliError("usage", Exit.USAGE), Exit.USAGE),
    ],
)
def test_the_cli_maps_exit_statuses_from_types(
    exc: errors.StepSDKError, status: Exit, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_status(exc) == status

    @run_safely("demo-command")
    def command(args: argparse.Namespace) -> int:
        raise exc

    assert command(argparse.Namespace(json=True)) == status
    out, err = capsys.readouterr()
    assert err == f"stepsdk demo-command: error: {exc}\n"
    assert f'"status": {int(status)}' in out
