"""The web page of ``seal serve`` in a real browser: headless Chromium (selenium) against the real server.

The server runs as a subprocess on the tiny random model (``tiny_model_dir``), bound to 127.0.0.1 on a free
port, with an API key. The test enters the key, learns a short invented document, waits for its job to finish,
chats, asks before/after questions and checks the DOM. ``SEAL_SAVE_SCREENSHOT=1`` also copies the final
screenshot to ``results/serve/web_page.png``. Skips when selenium, chromium or chromedriver is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[1]
KEY = "browser-test-key"
TITLE = "The Larkspur Ferry"
DOCUMENT = ("The Larkspur Ferry crosses Lake Orvane twice a day. It was built in 1931 by the shipwright Odile "
            "Marchetti and carries forty passengers. Its bell is painted green.")

try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

pytestmark = [
    pytest.mark.skipif(not HAVE_SELENIUM, reason="selenium is not installed (pip install selenium)"),
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                       reason="chromium or chromedriver is missing (apt-get install chromium chromium-driver)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"seal serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"seal serve did not answer /health within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture()
def server(tmp_path, tiny_model_dir):
    port = free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "seal.cli", "serve", "--store", str(tmp_path / "store"), "--host", "127.0.0.1",
           "--port", str(port), "--api-key", KEY, "--model", str(tiny_model_dir),
           "--set", "inner_loop.epochs=1", "--set", "self_edit.max_new_tokens=16", "--set", "eval.answer_tokens=4"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_health(url, proc, log)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture()
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1100"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def save_full_page(driver, path: Path, width: int = 1280) -> None:
    """A screenshot of the whole page (headless windows are capped at the screen's height)."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": min(height, 3000), "deviceScaleFactor": 1, "mobile": False})
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_web_page_learns_and_chats(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    start = time.monotonic()
    d = browser
    wait = WebDriverWait(d, 20, poll_frequency=0.2)

    def q(css):
        return d.find_element(By.CSS_SELECTOR, css)

    def items(css):
        return d.find_elements(By.CSS_SELECTOR, css)

    def error_text():
        box = q("#error")
        return box.text.strip() if box.is_displayed() else ""

    d.get(server + "/")
    assert "SEAL" in d.title
    wait.until(lambda _: q("#health").get_attribute("data-ok") == "1")
    # Without the key every API route is refused, and the page says so from the error JSON.
    wait.until(lambda _: error_text())
    assert "key" in error_text().lower() or "auth" in error_text().lower(), error_text()

    q("#api-key").send_keys(KEY)
    q("#api-key-save").click()
    wait.until(lambda _: not error_text())
    wait.until(lambda _: len(items("#chat-model option")) >= 2)
    models = {o.get_attribute("value") for o in items("#chat-model option")}
    assert {"seal", "base"} <= models, models
    assert d.execute_script("return sessionStorage.getItem('seal-api-key')") == KEY
    versions_before = len(items("#versions li.item"))

    q("#doc-title").send_keys(TITLE)
    q("#doc-text").send_keys(DOCUMENT)
    q("#doc-learn").click()
    WebDriverWait(d, 45, poll_frequency=0.3).until(
        lambda _: q("#job-status").get_attribute("data-status") in ("done", "failed", "rejected", "error"))
    status = q("#job-status")
    assert status.get_attribute("data-status") == "done", (status.text, error_text())
    wait.until(lambda _: any(TITLE in li.text for li in items("#documents li.item")))
    wait.until(lambda _: len(items("#versions li.item")) > versions_before)
    assert items("#versions li.live"), q("#versions").text
    assert all(li.find_elements(By.CSS_SELECTOR, "button.forget") for li in items("#documents li.item"))
    # the learned document's probe questions (GET /v1/documents/{id}/probes), answered before and after
    wait.until(lambda _: items("#compare-body tr.probe") or error_text())
    assert not error_text(), error_text()
    assert "Probe questions of" in q("#compare-title").text
    assert all(td.text.strip() for td in items("#compare-body tr.probe td"))

    # Chat, streamed, sampled at temperature 1 (the tiny random model's greedy answers decode to nothing).
    for css, value in (("#chat-temperature", "1"), ("#chat-max-tokens", "8")):
        q(css).clear()
        q(css).send_keys(value)
    q("#chat-stream").click()
    q("#chat-input").send_keys("Who built the Larkspur Ferry?")
    q("#chat-send").click()
    wait.until(lambda _: items("#chat-log li.assistant[data-done='1']") or error_text())
    assert not error_text(), error_text()
    answer = items("#chat-log li.assistant[data-done='1']")[-1]
    assert "empty-answer" not in answer.get_attribute("class")
    assert answer.find_element(By.CSS_SELECTOR, ".text").text.strip()
    assert answer.find_element(By.CSS_SELECTOR, ".who").text.lower() == "seal · v1"
    assert items("#chat-log li.user")[-1].text.endswith("Who built the Larkspur Ferry?")

    # Before (base) and after (seal), side by side, for the document just learned.
    box = q("#compare-questions")
    if not box.get_attribute("value").strip():
        box.send_keys("When was the Larkspur Ferry built?")
    q("#compare-ask").click()
    wait.until(lambda _: items("#compare-body tr") and all(
        td.text.strip() not in ("", "…") for td in items("#compare-body td.before, #compare-body td.after")))
    assert not error_text(), error_text()

    shot = tmp_path / "web_page.png"
    save_full_page(d, shot)
    assert shot.stat().st_size > 10_000
    if os.environ.get("SEAL_SAVE_SCREENSHOT") == "1":
        dest = ROOT / "results" / "serve" / "web_page.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, dest)

    # Forget the document (a new version without it), then roll back to the version that had it.
    q("#documents li.item button.forget").click()
    slow = WebDriverWait(d, 45, poll_frequency=0.3)
    slow.until(lambda _: q("#job-status").text.startswith("Forgetting") and
               q("#job-status").get_attribute("data-status") in ("done", "failed", "rejected", "error"))
    assert q("#job-status").get_attribute("data-status") == "done", (q("#job-status").text, error_text())
    wait.until(lambda _: not any(TITLE in li.text for li in items("#documents li")))
    wait.until(lambda _: q("#versions li.live").get_attribute("data-version") == "2")
    q("#versions li[data-version='1'] button.rollback").click()
    slow.until(lambda _: q("#job-status").text.startswith("Rolling back") and
               q("#job-status").get_attribute("data-status") in ("done", "failed", "rejected", "error"))
    assert q("#job-status").get_attribute("data-status") == "done", (q("#job-status").text, error_text())
    wait.until(lambda _: q("#versions li.live").get_attribute("data-version") == "3")
    assert "rollback" in q("#versions li.live").text and "v1" in q("#versions li.live").text
    assert not error_text(), error_text()
    assert time.monotonic() - start < 90
