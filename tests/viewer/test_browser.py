"""End to end in a real headless Chromium against ``python -m stepsdk.viewer`` (a real server process).

Screenshots of every page go to test-artifacts/viewer/ (look at them). Any SEVERE browser
console message fails the test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.chromium import LOOPBACK_ONLY
from tests.chromium import chrome as new_chrome
from tests.timing import WAIT
from tests.viewer import dataset

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "viewer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ViewerServer:
    """``python -m stepsdk.viewer`` in a subprocess, until stopped."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        # without PYTEST_* variables: NiceGUI would take itself for a test run and ignore --port
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stepsdk.viewer", *args, "--port", str(self.port)],
            cwd=REPO,
            env={**clean, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"viewer exited: {self.output()}")
            try:
                if httpx.get(self.url + "/api/stats?days=1", timeout=2).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"viewer did not start: {self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def backup_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewerServer]:
    root = tmp_path_factory.mktemp("browser") / "backup"
    dataset.write_backup(root, dataset.build())
    server = ViewerServer(["--backup-dir", str(root)])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    chrome = new_chrome(LOOPBACK_ONLY)
    chrome.set_page_load_timeout(30)
    yield chrome
    chrome.quit()


def wait_text(driver: webdriver.Chrome, text: str, timeout: float = WAIT) -> None:
    WebDriverWait(driver, timeout).until(
        lambda d: text in d.find_element(By.TAG_NAME, "body").text, f"text {text!r} never appeared"
    )


def leave(driver: webdriver.Chrome) -> None:
    """Close the current page and forget its console: a page left open on a server that a test then
    stops keeps reconnecting its websocket, and those refusals must not be blamed on the next test."""
    driver.get("about:blank")
    driver.get_log("browser")


@pytest.fixture(autouse=True)
def _fresh_page(request: pytest.FixtureRequest) -> None:
    if "driver" in request.fixturenames:
        leave(request.getfixturevalue("driver"))


def no_console_errors(driver: webdriver.Chrome) -> None:
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def shot(driver: webdriver.Chrome, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_task_list_task_and_lightbox(backup_server: ViewerServer, driver: webdriver.Chrome) -> None:
    driver.get(backup_server.url + "/")
    wait_text(driver, "6 tasks")
    shot(driver, "1-tasks")
    no_console_errors(driver)

    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.LINK_TEXT, "task-ok"))).click()
    wait_text(driver, "Step 1 of 4")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys("j")
    wait_text(driver, "Step 2 of 4")
    # the screenshot really loads (a decoded image, not a broken icon) with the tap drawn over it
    image = WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script(
            "const i = [...document.querySelectorAll('.step-shot img')].find(i => i.naturalWidth > 0);"
            "return i || null;"
        )
    )
    assert driver.execute_script("return arguments[0].naturalWidth", image) == 270
    assert driver.find_elements(By.CSS_SELECTOR, ".step-shot svg circle")
    time.sleep(0.5)  # charts are drawn after the page is usable
    shot(driver, "2-task")

    image.click()
    WebDriverWait(driver, WAIT).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, ".q-dialog .q-card"))
    )
    wait_text(driver, "Step 2 · action")
    time.sleep(0.3)
    shot(driver, "3-lightbox")
    body.send_keys(Keys.ESCAPE)
    WebDriverWait(driver, WAIT).until(
        ec.invisibility_of_element_located((By.CSS_SELECTOR, ".q-dialog .q-card"))
    )
    no_console_errors(driver)


def test_failed_task_stats_and_compare(backup_server: ViewerServer, driver: webdriver.Chrome) -> None:
    driver.get(backup_server.url + "/tasks/task-fail?step=3")
    wait_text(driver, "Step 3 of 5")
    wait_text(driver, "TimeoutError")
    assert driver.execute_script("return window.__xss === undefined")  # the <script> in the title stayed text
    shot(driver, "4-failed-task")
    driver.get(backup_server.url + "/stats")
    wait_text(driver, "Most frequent errors")
    wait_text(driver, "Tap Buy")  # the slowest step, by its name (issue #13)
    wait_text(driver, "Tap Pay")  # the example step of its error group
    time.sleep(0.5)
    shot(driver, "5-stats")
    driver.get(backup_server.url + "/compare?a=task-ok&b=task-fail")
    wait_text(driver, "B − A step time")
    shot(driver, "6-compare")
    driver.get(backup_server.url + "/tasks/task-broken")  # missing and non-image objects: placeholders
    wait_text(driver, "Step 1 of 2")
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('.step-shot img')].some(i => i.complete && i.naturalWidth > 0)"
        )
    )
    shot(driver, "7-broken-screenshots")
    driver.get(backup_server.url + "/tasks/task-long?step=60")
    wait_text(driver, "Steps 51–100 of 120")
    time.sleep(0.5)
    shot(driver, "8-long-task")
    driver.get(backup_server.url + "/tasks/%3Cscript%3Ewindow.__xss%3D1%3C%2Fscript%3E")
    wait_text(driver, "Task not found")
    assert driver.execute_script("return window.__xss === undefined")
    no_console_errors(driver)


def test_supabase_source_in_the_browser(stack, driver: webdriver.Chrome) -> None:
    dataset.write_supabase(stack.client(), dataset.build())
    server = ViewerServer(["--supabase-url", stack.url], env={"SUPABASE_SECRET_KEY": stack.service_role_key})
    try:
        driver.get(server.url + "/tasks/task-ok?step=2")
        wait_text(driver, "Step 2 of 4")
        WebDriverWait(driver, WAIT).until(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('.step-shot img')].some(i => i.naturalWidth > 0)"
            )
        )
        assert stack.service_role_key not in driver.page_source
        shot(driver, "9-supabase-task")
        no_console_errors(driver)
        assert stack.service_role_key not in server.output()  # nor in the server's log
    finally:
        leave(driver)
        server.stop()


def test_error_groups_are_normalized_on_the_stats_page(tmp_path: Path, driver: webdriver.Chrome) -> None:
    """Issue #13 item 9, as a person sees it: "no element at (180, 132)" and "(200, 90)" are one
    group of three, session ids fold into <id>."""
    from tests.viewer.test_search_stats import coords_dataset

    root = tmp_path / "backup"
    dataset.write_backup(root, coords_dataset())
    server = ViewerServer(["--backup-dir", str(root)])
    try:
        driver.get(server.url + "/stats?days=7")
        wait_text(driver, "no element at (<n>, <n>)")
        wait_text(driver, "session <id> expired")
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "no element at (180, 132)" not in text and "no element at (200, 90)" not in text
        no_console_errors(driver)
    finally:
        leave(driver)
        server.stop()
