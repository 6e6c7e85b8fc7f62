"""The single-file HTML report in a real headless Chromium, opened from ``file://`` with the
network switched off: every step with its screenshot and overlay, j/k stepping, playback, and
recorded ``<script>`` that stays text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from tests.chromium import chrome as new_chrome
from tests.share import phone_run

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "share"


@pytest.fixture(scope="module")
def offline_chrome() -> Iterator[webdriver.Chrome]:
    chrome = new_chrome("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://0.0.0.0:9")
    chrome.execute_cdp_cmd("Network.enable", {})
    chrome.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    yield chrome
    chrome.quit()


def _tags(text: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            tags.append((tag, attrs))

    Collect().feed(text)
    return tags


def _urls(text: str) -> list[str]:
    """Every URL an element would load (src, href, and the like)."""
    return [
        v or ""
        for _, attrs in _tags(text)
        for k, v in attrs
        if k in ("src", "href", "srcset", "action", "poster", "data", "xlink:href")
    ]


def _state(driver: webdriver.Chrome) -> dict[str, Any]:
    return driver.execute_script("""
        const shown = [...document.querySelectorAll('.detail')].filter(s => !s.hidden);
        const s = shown[0];
        const img = s && s.querySelector('.shot img');
        const circle = s && s.querySelector('svg.overlay circle');
        const box = img && img.getBoundingClientRect();
        const c = circle && circle.getBoundingClientRect();
        return {shown: shown.length, index: s ? Number(s.dataset.index) : -1,
                title: s ? s.querySelector('.step-title').textContent : null,
                imgLoaded: !!(img && img.complete && img.naturalWidth > 0),
                natural: img ? [img.naturalWidth, img.naturalHeight] : null,
                circle: circle ? [Number(circle.getAttribute('cx')), Number(circle.getAttribute('cy'))] : null,
                circleCentre: c ? [c.left + c.width / 2 - box.left, c.top + c.height / 2 - box.top] : null,
                shownSize: box ? [box.width, box.height] : null,
                pwned: window.__pwned === undefined ? null : window.__pwned};
    """)


def test_report_offline_every_step_overlay_keys_and_no_injection(
    backup: Path,
    run: dict[str, Any],
    tmp_path: Path,
    offline_chrome: webdriver.Chrome,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "report.html"
    assert (
        main(
            [
                "export",
                phone_run.TASK_ID,
                "--format",
                "html",
                "-o",
                str(out),
                "--json",
                "--seconds-per-frame",
                "0.1",
            ]
        )
        == Exit.OK
    )
    summary = json.loads(capsys.readouterr().out)
    text = out.read_text()
    assert summary["bytes"] == len(text.encode())
    # self-contained: no URL the browser could fetch (only data: images, the SVG namespace)
    urls = _urls(text)
    assert urls and all(u.startswith("data:image/webp;base64,") for u in urls), [u[:40] for u in urls]
    assert {tag for tag, _ in _tags(text)} <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "header",
        "h1",
        "main",
        "div",
        "span",
        "b",
        "small",
        "p",
        "table",
        "tr",
        "td",
        "section",
        "h2",
        "img",
        "svg",
        "circle",
        "line",
        "pre",
        "details",
        "summary",
        "button",
        "script",
    }
    assert sum(tag == "script" for tag, _ in _tags(text)) == 1  # ours only
    assert "<script>window.__pwned" not in text and "&lt;script&gt;window.__pwned" in text

    driver = offline_chrome
    assert driver.execute_script("return navigator.onLine") in (True, False)  # a page is needed first
    driver.get(out.as_uri())
    assert driver.execute_script("return navigator.onLine") is False  # the network is really off
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.body.dataset.current") == "0")
    steps = run["steps"]
    body = driver.find_element(By.TAG_NAME, "body")
    assert "Turn on Wi-Fi" in body.text and "success" in driver.find_element(By.ID, "status").text
    seen = []
    for index, step in enumerate(steps):
        state = _state(driver)
        assert state["shown"] == 1 and state["index"] == index, state
        assert state["title"] == f"Step {index + 1} of {len(steps)}"
        assert state["imgLoaded"] and state["natural"] == list(phone_run.SCREEN), state
        tap = phone_run.tap_pixel(step)
        if tap is not None:  # the overlay sits on the tap, in image pixels and on screen
            assert state["circle"] == [float(tap[0]), float(tap[1])], state
            scale = state["shownSize"][0] / phone_run.SCREEN[0]
            assert state["circleCentre"] == pytest.approx([tap[0] * scale, tap[1] * scale], abs=2), state
        elif step["step_data"]["action"].get("action") == "Swipe":
            assert state["circle"] is not None
        else:
            assert state["circle"] is None
        seen.append(state["index"])
        if index == 1:  # the step whose thinking carries the script: shown as text, never run
            thinking = driver.execute_script(
                "return [...document.querySelectorAll('.detail')][1].querySelector('.thinking').textContent"
            )
            assert phone_run.XSS in thinking
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "report-step-2.png"))
        body.send_keys("j")
    assert seen == list(range(len(steps)))
    assert _state(driver)["index"] == len(steps) - 1  # j at the end stays at the end
    body.send_keys("k")
    body.send_keys("k")
    assert _state(driver)["index"] == len(steps) - 3
    assert _state(driver)["pwned"] is None
    # playback: p plays the screenshot steps to the end (0.1 s a step here)
    body.send_keys("p")
    WebDriverWait(driver, 10).until(lambda d: _state(d)["index"] == len(steps) - 1)
    assert driver.find_element(By.ID, "play").text == "Play"  # stopped at the end
    assert driver.execute_script("return window.__pwned") is None
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_report_duration_of_a_task_with_one_naive_timestamp() -> None:
    """Naive = UTC (stepsdk.schema): a backup row with a naive started_at and an aware
    finished_at made render() raise TypeError (naive minus aware); it is 5 s."""
    from stepsdk.share.html_report import render
    from stepsdk.share.run import SharedRun

    task = {
        "task_id": "t",
        "status": "success",
        "started_at": "2026-11-29T10:00:00",
        "finished_at": "2026-11-29T11:00:05+01:00",
    }
    html = render(SharedRun(task, []))
    assert "5.00 s" in html
