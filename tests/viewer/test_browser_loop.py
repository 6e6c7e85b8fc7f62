"""The daily debugging loop (issue 13) in a real headless Chromium against ``python -m stepsdk.viewer``:
what a person sees. One server (the demo run + the shared data set + two extra runs) and one
browser for the module. Screenshots go to test-artifacts/viewer/ (docs/images/ holds copies)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from stepsdk.integrations.demo_agent import record_demo
from tests.chromium import LOOPBACK_ONLY
from tests.chromium import chrome as new_chrome
from tests.timing import WAIT
from tests.viewer import dataset
from tests.viewer import test_browser as tb  # a module reference: its tests are not collected twice

pytestmark = pytest.mark.browser
DESKTOP = (1400, 857)  # the viewport of a 1400x1000 browser window
PHONE = (390, 844)


def _extra() -> dataset.Dataset:
    b = dataset._Builder()
    api = dataset._task(
        "api-run",
        "Weather lookup",
        "failed",
        timedelta(minutes=30),
        900.0,
        agent="api-agent",
        metadata={"model": "gpt-4o-mini", "prompt_version": "v3"},
    )
    stale = dataset._task("stale-run", "Crashed without a word", "running", timedelta(hours=3), None)
    b.ds.tasks = [api, stale]
    http = {"kind": "http", "method": "GET", "url": "https://api.example/v1/forecast?city=Paris"}
    b.step(
        api,
        1,
        "action",
        120.0,
        step_data={**http, "response": {"status_code": 200}},
        action_result={"status_code": 200},
    )  # recorded without a name: the viewer derives it
    b.step(
        api,
        2,
        "action",
        95.0,
        success=False,
        name="GET /v1/forecast → 404",
        error_type="HTTPStatusError",
        error_message="HTTP 404 Not Found",
        step_data={**http, "response": {"status_code": 404}},
        action_result={"status_code": 404},
    )
    b.step(stale, 1, "thinking", 50.0, thinking="about to tap")
    return b.ds


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tb.ViewerServer, str]]:
    root = tmp_path_factory.mktemp("loop") / "backup"
    dataset.write_backup(root, dataset.build())
    (root / "extra").mkdir(parents=True)
    extra = _extra()
    dataset.write_backup(root / "extra", extra)
    for journal in (root / "extra").rglob("*"):  # one backup folder holds them all
        if journal.is_file():
            target = root / journal.relative_to(root / "extra").parent / ("extra-" + journal.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            journal.rename(target)
    demo = record_demo(backup_dir=root, supabase_url="", supabase_key="", pace=0.05)
    # 60 minutes: the 3-hour-old run is stale, the data set's 5-minute-old one stays live however
    # long the suite has been running
    srv = tb.ViewerServer(["--backup-dir", str(root), "--stale-minutes", "60"])
    yield srv, demo.task_id
    srv.stop()


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    chrome = new_chrome(LOOPBACK_ONLY)
    chrome.set_page_load_timeout(30)
    viewport(chrome, DESKTOP)
    yield chrome
    chrome.quit()


def viewport(driver: webdriver.Chrome, size: tuple[int, int], mobile: bool = False) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": mobile},
    )


def rect(driver: webdriver.Chrome, css: str) -> dict[str, float]:
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); if (!e) return null;"
        "const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left, right: r.right,"
        " width: r.width, height: r.height};",
        css,
    )
    assert found is not None, f"{css} not on the page"
    return found


def full_page(driver: webdriver.Chrome, name: str) -> None:
    """The whole page, not just the viewport (a phone page is long)."""
    import base64

    tb.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    (tb.ARTIFACTS / f"{name}.png").write_bytes(base64.b64decode(data["data"]))


def url(driver: webdriver.Chrome) -> str:
    return driver.execute_script("return location.pathname + location.search")


def test_task_page_shows_saw_thought_did_at_once(
    server: tuple[tb.ViewerServer, str], driver: webdriver.Chrome
) -> None:
    srv, demo_id = server
    assert f"{srv.url}/" in srv.output()  # `view` prints where it listens
    # DNS rebinding: the real server refuses a foreign Host header, pages and API alike
    for path in ("/", "/api/tasks", f"/tasks/{demo_id}"):
        refused = httpx.get(srv.url + path, headers={"Host": "rebind.attacker.example"}, timeout=10)
        assert refused.status_code == 421 and demo_id not in refused.text, path
    assert (
        httpx.get(srv.url + "/api/tasks", headers={"Host": f"localhost:{srv.port}"}, timeout=10).status_code
        == 200
    )
    driver.get(f"{srv.url}/tasks/{demo_id}?step=4")  # the demo's failed tap: all four parts
    tb.wait_text(driver, "Step 4 of 9")
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('.step-shot img')].some(i => i.complete && i.naturalWidth > 0)"
        )
    )
    time.sleep(0.5)  # charts and the minimap are drawn after the page is usable
    tb.shot(driver, "loop-1-task-desktop")
    height = driver.execute_script("return window.innerHeight")
    assert height == DESKTOP[1]
    shot = rect(driver, ".q-card .step-shot")
    assert shot["top"] >= 0 and shot["bottom"] <= height and shot["height"] > 300  # the whole screenshot
    for part in (".detail-thinking", ".detail-action", ".detail-result"):
        box = rect(driver, part)
        assert box["top"] >= 0 and box["top"] + 40 <= height, (
            part,
            box,
            height,
        )  # starts on screen, readable
        assert box["left"] >= shot["right"] - 1, (part, box, shot)  # beside the screenshot, not below it
    assert driver.execute_script("return window.scrollY") == 0
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "Tap" in body and "no element at (180, 132)" in body and "Network & internet" in body

    driver.get(f"{srv.url}/tasks/api-run")
    tb.wait_text(driver, "GET /v1/forecast → 404")  # the recorded name, in the timeline
    tb.wait_text(driver, "GET /v1/forecast → 200")  # derived for the step recorded without one
    assert "#1 action" not in driver.find_element(By.TAG_NAME, "body").text
    tb.wait_text(driver, "prompt_version: v3")  # task metadata in the header
    tb.no_console_errors(driver)


def test_phone_layout_is_one_column(server: tuple[tb.ViewerServer, str], driver: webdriver.Chrome) -> None:
    srv, demo_id = server
    viewport(driver, PHONE, mobile=True)
    try:
        driver.get(f"{srv.url}/tasks/{demo_id}?step=4")
        tb.wait_text(driver, "Step 4 of 9")
        WebDriverWait(driver, WAIT).until(
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, ".q-card .step-shot")
                and d.find_elements(By.CSS_SELECTOR, ".detail-action .font-mono")
            )
        )
        time.sleep(0.8)  # the layout settles
        assert (
            driver.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
        )  # nothing overflows
        action = rect(driver, ".detail-action .font-mono")
        assert action["width"] > 250  # JSON gets the full width, not one character per line
        timeline, detail = rect(driver, ".q-timeline"), rect(driver, ".q-card .step-shot")
        assert detail["top"] > timeline["top"]  # stacked, one column
        full_page(driver, "loop-2-task-phone")
        tb.no_console_errors(driver)
    finally:
        viewport(driver, DESKTOP)


def test_n_filter_and_state_in_the_url(server: tuple[tb.ViewerServer, str], driver: webdriver.Chrome) -> None:
    srv, _ = server
    driver.get(f"{srv.url}/tasks/task-long")
    tb.wait_text(driver, "Step 1 of 120")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys("n")
    tb.wait_text(driver, "Step 40 of 120")  # the next failed step
    selected = WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.CSS_SELECTOR, ".selected-step"))
    assert "FAILED" in selected.text and "screen did not change" in selected.text
    WebDriverWait(driver, WAIT).until(lambda d: url(d) == "/tasks/task-long?step=40")
    body.send_keys("j")
    tb.wait_text(driver, "Step 41 of 120")
    WebDriverWait(driver, WAIT).until(lambda d: url(d) == "/tasks/task-long?step=41")
    driver.refresh()  # a shared link or a reload opens the same step
    tb.wait_text(driver, "Step 41 of 120")

    driver.get(f"{srv.url}/")
    tb.wait_text(driver, "9 tasks")  # the shared set, the two extra runs and the demo
    driver.find_element(By.CSS_SELECTOR, ".q-select").click()  # the status filter is the first select
    WebDriverWait(driver, WAIT).until(
        ec.element_to_be_clickable((By.XPATH, "//div[@role='option']//span[text()='failed']"))
    ).click()
    tb.wait_text(driver, "2 tasks")
    WebDriverWait(driver, WAIT).until(lambda d: url(d) == "/?status=failed")
    driver.back()
    driver.forward()
    tb.wait_text(driver, "2 tasks")
    tb.no_console_errors(driver)


def test_stale_running_task(server: tuple[tb.ViewerServer, str], driver: webdriver.Chrome) -> None:
    srv, _ = server
    driver.get(f"{srv.url}/tasks/stale-run")
    tb.wait_text(driver, "stale · no new step for 3 h")
    badge = rect(driver, ".q-badge.bg-orange")
    assert badge["width"] > 0 and badge["top"] < DESKTOP[1]
    tb.shot(driver, "loop-3-stale")
    driver.get(f"{srv.url}/tasks/task-running")  # 5 minutes idle: still live
    tb.wait_text(driver, "Step 1 of 2")
    assert "stale" not in driver.find_element(By.TAG_NAME, "body").text
    tb.no_console_errors(driver)


def test_compare_two_runs_picked_in_the_list(
    server: tuple[tb.ViewerServer, str], driver: webdriver.Chrome
) -> None:
    srv, _ = server
    driver.get(f"{srv.url}/?sort=task_id&order=asc")
    tb.wait_text(driver, "9 tasks")
    for task_id in ("task-fail", "task-ok"):
        row = driver.find_element(By.XPATH, f"//tr[.//a[text()='{task_id}']]")
        row.find_element(By.CSS_SELECTOR, ".q-checkbox").click()
    button = driver.find_element(By.XPATH, "//button[.//span[text()='Compare selected']]")
    WebDriverWait(driver, WAIT).until(lambda d: button.is_enabled() and not button.get_attribute("disabled"))
    button.click()
    tb.wait_text(driver, "First divergence")
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.diverge"))
    WebDriverWait(driver, WAIT).until(  # scrolled into view (a smooth scroll: slower on a loaded machine)
        lambda d: rect(d, "tr.diverge")["top"] >= 0 and rect(d, "tr.diverge")["bottom"] <= DESKTOP[1]
    )
    row = rect(driver, "tr.diverge")
    assert row["top"] >= 0 and row["bottom"] <= DESKTOP[1]
    colour = driver.execute_script(
        "return getComputedStyle(document.querySelector('tr.diverge')).backgroundColor"
    )
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent", "rgb(255, 255, 255)")  # highlighted
    text = driver.find_element(By.CSS_SELECTOR, "tr.diverge").text
    assert "#3 Tap Buy ✗ TimeoutError" in text  # the step's name (issue #13)
    tb.shot(driver, "loop-4-compare")
    # the row opens that step (the table may be drawn again meanwhile: find the link afresh then)
    WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "tr.diverge a").click() or True
    )
    tb.wait_text(driver, "Step 3 of")
    tb.no_console_errors(driver)
