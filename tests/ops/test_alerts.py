"""``stepsdk alerts check`` end to end on both backends (the local stack's SQL functions and a
backup folder), with webhooks posted to a local receiver: bodies, once per episode, resolution,
retry of an undelivered notification, and the rule file's validation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from stepsdk.cli import main
from stepsdk.ops import alerts as _alerts
from tests.cli_data import Dataset, json_out, load_into_backup, load_into_stack, local_env, stack_env
from tests.ops.webhook_receiver import WebhookReceiver

RULES = """\
[[webhook]]
url = "{json}"

[[webhook]]
url = "{slack}"
format = "slack"

[[webhook]]
url = "{feishu}"
format = "feishu"

[[rule]]
name = "bots failing"
kind = "failure_rate"
window = "2h"
above = 0.5
min_tasks = 3
agent = "bot"

[[rule]]
name = "slow second tap"
kind = "step_p95"
window = "2h"
step_type = "action"
step_name = "Tap 2"
above_ms = 20

[[rule]]
name = "repeated errors"
kind = "error_repeats"
window = "2h"
more_than = 3

[[rule]]
name = "uploads stuck"
kind = "upload_backlog"
older_than = "30m"
"""
KINDS = {
    "bots failing": "failure_rate",
    "slow second tap": "step_p95",
    "repeated errors": "error_repeats",
    "uploads stuck": "upload_backlog",
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def _failing_runs() -> Dataset:
    """3 failed and 1 successful run of agent "bot" an hour ago (rate 0.75); each has a 3rd step
    failing with TimeoutError "took too long" (4 times); "Tap 2" steps last 25 ms."""
    ds = Dataset()
    for i, status in enumerate(("failed", "failed", "failed", "success")):
        ds.add_task(f"run-{i}", age=timedelta(hours=1), status=status, image_seeds=[None, None, None])
    ds.add_task(
        "other-agent", age=timedelta(hours=1), status="success", agent="someone-else", image_seeds=[None]
    )
    return ds


def _good_runs(n: int) -> Dataset:
    ds = Dataset()
    for i in range(n):
        ds.add_task(f"good-{i}", age=timedelta(minutes=20), status="success", image_seeds=[None])
    return ds


def _setup(
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> tuple[Path, object]:
    backup = tmp_path / "backup"
    ds = _failing_runs()
    load_into_backup(backup, ds)  # the backlog rule reads the backup folder in both cases
    stack = None
    if backend == "supabase":
        stack = request.getfixturevalue("stack")
        load_into_stack(stack, ds)
        stack_env(monkeypatch, stack, backup)
    else:
        local_env(monkeypatch, backup)
    rules = tmp_path / "alerts.toml"
    rules.write_text(
        RULES.format(json=receiver.url("/json"), slack=receiver.url("/slack"), feishu=receiver.url("/feishu"))
    )
    monkeypatch.setenv("STEPSDK_ALERTS", str(rules))
    monkeypatch.delenv("STEPSDK_ALERTS_STATE", raising=False)
    monkeypatch.delenv("STEPSDK_ALERT_WEBHOOK", raising=False)
    return rules, stack


def _by_path(posts: list[tuple[str, dict]]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"/json": [], "/slack": [], "/feishu": []}
    for path, body in posts:
        out[path].append(body)
    return out


@pytest.mark.parametrize("backend", ["backup", "supabase"])
def test_alerts_fire_once_and_resolve(
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules, stack = _setup(backend, tmp_path, monkeypatch, request, receiver)

    # 1. every rule's condition holds: each alert fires once, to every webhook and the console
    assert main(["alerts", "check"]) == 1
    out = capsys.readouterr().out
    posts = _by_path(receiver.take())
    assert [len(v) for v in posts.values()] == [4, 4, 4]
    generic = {b["alert"]["rule"]: b for b in posts["/json"]}
    assert set(generic) == set(KINDS)
    for rule, body in generic.items():
        assert list(body) == ["source", "status", "text", "alert"]
        assert (body["source"], body["status"]) == ("stepsdk", "firing")
        assert body["alert"]["kind"] == KINDS[rule] and body["text"].startswith(
            f"[stepsdk] 🔴 FIRING {rule}: "
        )
        assert list(body["alert"]) == [
            "status",
            "key",
            "rule",
            "kind",
            "summary",
            "value",
            "threshold",
            "since",
            "at",
            "details",
        ]
        assert body["text"] in out  # the console got the same line
    failing = generic["bots failing"]["alert"]
    assert (failing["value"], failing["threshold"]) == (0.75, 0.5)
    assert (failing["details"]["finished_tasks"], failing["details"]["failed_tasks"]) == (4, 3)
    assert "3 of 4 finished task(s) of bot failed" in failing["summary"]
    slow = generic["slow second tap"]["alert"]
    assert (slow["value"], slow["threshold"], slow["details"]["steps"]) == (25.0, 20.0, 4)
    repeated = generic["repeated errors"]["alert"]
    assert repeated["key"] == "repeated errors::TimeoutError::took too long"
    assert (repeated["value"], repeated["details"]["occurrences"]) == (4.0, 4)
    assert repeated["details"]["error_message"] == "took too long"
    stuck = generic["uploads stuck"]["alert"]
    assert stuck["details"]["pending"] > 0 and stuck["value"] > 30 * 60
    assert {b["text"] for b in posts["/slack"]} == {b["text"] for b in posts["/json"]}
    assert all(list(b) == ["text"] for b in posts["/slack"])
    assert [b["msg_type"] for b in posts["/feishu"]] == ["text"] * 4
    assert {b["content"]["text"] for b in posts["/feishu"]} == {b["text"] for b in posts["/json"]}

    # 2. nothing changed: no notification, no output, exit 0; the episodes stay active
    assert main(["alerts", "check"]) == 0
    assert receiver.take() == [] and capsys.readouterr().out == ""
    assert main(["alerts", "check", "--json"]) == 0
    summary = json_out(capsys.readouterr().out)
    assert (summary["fired"], summary["resolved"]) == ([], [])
    assert sorted(a["rule"] for a in summary["active"]) == sorted(KINDS)
    assert receiver.take() == []
    assert main(["alerts", "show", "--json"]) == 0
    assert len(json_out(capsys.readouterr().out)["active"]) == 4

    # 3. ten good runs bring the failure rate to 3/14: that alert resolves (once), the rest stay quiet
    good = _good_runs(10)
    if stack is not None:
        load_into_stack(stack, good)
    else:
        load_into_backup(tmp_path / "backup", good)
    assert main(["alerts", "check", "--json"]) == 0
    summary = json_out(capsys.readouterr().out)
    assert [e["rule"] for e in summary["resolved"]] == ["bots failing"] and summary["fired"] == []
    posts = _by_path(receiver.take())
    assert [len(v) for v in posts.values()] == [1, 1, 1]
    [resolved] = posts["/json"]
    assert (resolved["status"], resolved["alert"]["rule"]) == ("resolved", "bots failing")
    assert resolved["text"].startswith("[stepsdk] ✅ RESOLVED bots failing: resolved: 3 of 4 finished")
    assert main(["alerts", "check"]) == 0 and receiver.take() == []
    state = json.loads(_alerts.default_state_file(rules).read_text())
    assert sorted(v["rule"] for v in state["active"].values()) == [
        "repeated errors",
        "slow second tap",
        "uploads stuck",
    ]


def test_undelivered_notification_is_retried_not_lost(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules, _ = _setup("backup", tmp_path, monkeypatch, request, receiver)
    receiver.status = 500
    assert main(["alerts", "check"]) == 75
    err = capsys.readouterr().err
    assert (
        "not delivered" in err and receiver.url("/json") not in err and "127.0.0.1" in err
    )  # host, never the URL
    assert len(receiver.take()) == 12  # tried: 4 alerts x 3 webhooks
    assert json.loads(_alerts.default_state_file(rules).read_text())["active"] == {}
    receiver.status = 200
    receiver.reply = {"code": 19001, "msg": "bad sign"}  # Feishu refuses with HTTP 200 and a code
    assert main(["alerts", "check"]) == 75
    assert len(receiver.take()) == 12
    receiver.reply = {"code": 0}
    assert main(["alerts", "check"]) == 1
    assert len(receiver.take()) == 12
    assert main(["alerts", "check"]) == 0 and receiver.take() == []


def test_error_repeats_filters_and_groups(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules, _ = _setup("backup", tmp_path, monkeypatch, request, receiver)
    rules.write_text(f"""
[[webhook]]
url = "{receiver.url("/json")}"
[[rule]]
name = "timeouts"
kind = "error_repeats"
window = "2h"
more_than = 3
message_contains = "TOO LONG"
[[rule]]
name = "value errors"
kind = "error_repeats"
window = "2h"
more_than = 0
error_type = "ValueError"
[[rule]]
name = "too short a window"
kind = "error_repeats"
window = "30m"
more_than = 0
""")
    assert main(["alerts", "check", "--json"]) == 1
    summary = json_out(capsys.readouterr().out)
    assert [e["key"] for e in summary["fired"]] == ["timeouts::TimeoutError::took too long"]
    assert [b["alert"]["rule"] for _, b in receiver.take()] == ["timeouts"]


BAD_RULES = [
    ("[[rule]]\nname = 'x'\nkind = 'nope'\n", "kind must be one of"),
    ("[[rule]]\nname = 'x'\nkind = 'failure_rate'\nwindow = '1h'\n", "needs ['above']"),
    (
        "[[rule]]\nname = 'x'\nkind = 'failure_rate'\nwindow = '1h'\nabove = 2\n",
        "above must be a number in 0..1",
    ),
    ("[[rule]]\nname = 'x'\nkind = 'step_p95'\nwindow = 'soon'\nabove_ms = 5\n", "invalid duration"),
    (
        "[[rule]]\nname = 'x'\nkind = 'upload_backlog'\nolder_than = '1h'\nwindow = '1h'\n",
        "unknown keys ['window']",
    ),
    ("[[rule]]\nname = 'x'\nkind = 'upload_backlog'\nolder_than = '1h'\n" * 2, "unique"),
    ("[[webhook]]\nurl = 'ftp://x'\n", "http(s) URL"),
    ("[[webhook]]\nurl = 'http://x'\nformat = 'teams'\n", "format must be one of"),
    ("rule = 3\n", "use [[rule]] tables"),
    ("not toml at all [", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RULES)
def test_bad_rules_are_a_configuration_error(
    text: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text(text)
    local_env(monkeypatch, tmp_path / "backup")
    assert main(["alerts", "check", "--rules", str(rules)]) == 78
    assert message in capsys.readouterr().err


def test_missing_rules_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    local_env(monkeypatch, tmp_path / "backup")
    assert main(["alerts", "check", "--rules", str(tmp_path / "none.toml")]) == 78
    assert "no such file" in capsys.readouterr().err


def test_unreachable_backend_is_69_and_keeps_episodes(
    stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules, _ = _setup("supabase", tmp_path, monkeypatch, request, receiver)
    assert main(["alerts", "check"]) == 1
    receiver.take()
    with stack.faults.outage():
        assert main(["alerts", "check"]) == 69
    assert "not evaluated" in capsys.readouterr().err
    assert receiver.take() == []  # the data rules' episodes are kept, not resolved
    assert len(json.loads(_alerts.default_state_file(rules).read_text())["active"]) == 4
