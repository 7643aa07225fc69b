"""The page's Rules panel in a real browser (headless Chromium): a host with the events plugin
and two rules, one of which fails an action. The panel lists both, a firing updates the count
and last firing live (from the points stream, not by polling), a rule opens to its traces with
the failed action marked, a rule's text is only ever text, and without the events plugin the
panel stays hidden."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ioplex_web.testing import RunningHost, base_config, start_browser

selenium = pytest.importorskip("selenium")
pytest.importorskip("ioplex_events")
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

HOSTILE = "<img src=x onerror=window.__pwned=1>"
RULES = (
    f'IO dummy.light.1 : LOG = "light {HOSTILE}"\n'
    # dummy.light.2 is an int: writing the label's text to it fails, the LOG still runs
    'IO dummy.door.front = true : IO dummy.light.2 = IO dummy.label, LOG = "door"\n'
)
ROWS = "#rules-table > tbody > tr[data-rule]"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = start_browser(tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def rules_host(tmp_path: Path) -> Iterator[RunningHost]:
    rules = tmp_path / "rules.txt"
    rules.write_text(RULES)
    config = base_config(tmp_path / "host", rate=0)  # no users: read-only on loopback
    config["plugins"]["events"] = {"files": [str(rules)], "watch": False}
    running = RunningHost(config).start()
    try:
        yield running
    finally:
        running.stop()


def _row(driver: Any, line: int) -> Any:
    """The panel's row of the rule on `line` of rules.txt."""
    for row in driver.find_elements(By.CSS_SELECTOR, ROWS):
        if row.find_element(By.CSS_SELECTOR, ".rule-id").text.endswith(f"rules.txt:{line}"):
            return row
    return None


def _cell(driver: Any, line: int, cls: str) -> str:
    row = _row(driver, line)
    return row.find_element(By.CSS_SELECTOR, cls).text if row is not None else ""


def _rules_fetches(driver: Any) -> int:
    """How often the page has asked for /api/v1/rules so far."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => new URL(e.name).pathname === '/api/v1/rules').length"
    )


def _set(running: RunningHost, name: str, value: Any) -> None:
    running.call(running.host.ioservers["dummy"].set, name, value)


def test_rules_panel_live_traces_and_screenshot(
    rules_host: RunningHost, browser: Any, tmp_path: Path
) -> None:
    browser.get(rules_host.url + "/")
    wait = WebDriverWait(browser, 20)
    wait.until(EC.text_to_be_present_in_element((By.ID, "stream-state"), "live"))
    panel = wait.until(EC.visibility_of_element_located((By.ID, "rules")))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ROWS)) == 2)
    wait.until(lambda d: _cell(d, 1, ".rule-text") != "")
    # the rule's text is shown as text: no element made from it, no script run
    assert HOSTILE in _cell(browser, 1, ".rule-text")
    assert browser.execute_script("return document.querySelectorAll('#rules img').length") == 0
    assert browser.execute_script("return window.__pwned === undefined")
    assert _cell(browser, 1, ".rule-last") == "never"
    assert _cell(browser, 1, ".rule-fired") == "0"
    assert _cell(browser, 1, ".rule-state") == "idle"
    assert "2 of 2" in panel.find_element(By.CSS_SELECTOR, ".count").text
    # the directory the rule files share is left out of the ids shown (it is in the title)
    first = _row(browser, 1).find_element(By.CSS_SELECTOR, "button.rule-toggle")
    assert first.find_element(By.CSS_SELECTOR, ".rule-id").text == "rules.txt:1"
    assert first.get_attribute("title").startswith(
        str(tmp_path / "rules.txt") + ":1 (point events."
    )

    # idle rules cost no requests: the panel waits for the stream, it does not poll
    time.sleep(1.5)
    before = _rules_fetches(browser)
    time.sleep(2.5)
    assert _rules_fetches(browser) == before

    # a firing updates the count and the last firing live
    _set(rules_host, "light.1", 1)
    wait.until(lambda d: _cell(d, 1, ".rule-fired") == "1")
    assert _cell(browser, 1, ".rule-last").endswith("s ago")
    assert _rules_fetches(browser) > before
    _set(rules_host, "light.1", 2)
    wait.until(lambda d: _cell(d, 1, ".rule-fired") == "2")

    # the rule that fails an action: open its traces with the keyboard
    _set(rules_host, "door.front", True)
    wait.until(lambda d: _cell(d, 2, ".rule-fired") == "1")
    button = _row(browser, 2).find_element(By.CSS_SELECTOR, "button.rule-toggle")
    assert button.get_attribute("aria-expanded") == "false"
    detail = browser.find_element(By.ID, button.get_attribute("aria-controls"))
    assert not detail.is_displayed()
    button.send_keys(Keys.ENTER)
    wait.until(lambda d: detail.find_elements(By.CSS_SELECTOR, "tr.trace"))
    assert button.get_attribute("aria-expanded") == "true" and detail.is_displayed()
    trace = detail.find_element(By.CSS_SELECTOR, "tr.trace")
    assert trace.find_element(By.CSS_SELECTOR, ".trace-trigger").text.startswith(
        "IO dummy.door.front = "
    )
    failed = trace.find_element(By.CSS_SELECTOR, ".result.error")
    assert failed.text.startswith("✗ error: dummy.light.2") and "int" in failed.text
    assert trace.find_element(By.CSS_SELECTOR, ".result.ok").text == "✓ ok"
    assert "failed" in trace.get_attribute("class")
    status = trace.find_element(By.CSS_SELECTOR, ".trace-status")
    assert status.text == "done, with errors" and "error" in status.get_attribute("class")
    assert browser.execute_script(
        "return getComputedStyle(arguments[0]).color", failed
    ) != browser.execute_script(
        "return getComputedStyle(arguments[0]).color",
        trace.find_element(By.CSS_SELECTOR, ".result.ok"),
    )
    # an open rule's traces follow its firings
    _set(rules_host, "door.front", False)
    _set(rules_host, "door.front", True)
    wait.until(lambda d: len(detail.find_elements(By.CSS_SELECTOR, "tr.trace")) == 2)
    assert _cell(browser, 2, ".rule-fired") == "2"

    # the light rule's traces: its text (with the hostile part) only as text
    light = _row(browser, 1).find_element(By.CSS_SELECTOR, "button.rule-toggle")
    light.click()
    light_detail = browser.find_element(By.ID, light.get_attribute("aria-controls"))
    wait.until(lambda d: len(light_detail.find_elements(By.CSS_SELECTOR, "tr.trace")) == 2)
    assert HOSTILE in light_detail.text
    assert not light_detail.find_elements(By.CSS_SELECTOR, ".result.error")
    assert browser.execute_script("return document.querySelectorAll('#rules img').length") == 0
    browser.execute_script("document.getElementById('rules').scrollIntoView()")
    shot = tmp_path / "rules.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    light.click()  # closes again
    assert light.get_attribute("aria-expanded") == "false" and not light_detail.is_displayed()

    # the filter box: text and glob
    filt = browser.find_element(By.ID, "rules-filter")
    filt.send_keys("door")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ROWS)) == 1)
    assert _row(browser, 2) is not None
    filt.clear()
    filt.send_keys("*.txt:1")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ROWS)) == 1)
    assert _row(browser, 1) is not None
    assert "1 of 2" in panel.find_element(By.CSS_SELECTOR, ".count").text
    filt.send_keys(Keys.CONTROL, "a")
    filt.send_keys(Keys.BACKSPACE)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ROWS)) == 2)

    # with UI variables shown, the page's stream no longer carries the rule points: the
    # panel follows them with a watch of its own
    browser.find_element(By.ID, "show-ui").click()
    _set(rules_host, "light.1", 3)
    wait.until(lambda d: _cell(d, 1, ".rule-fired") == "3")
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def test_no_rules_panel_without_the_events_plugin(browser: Any, tmp_path: Path) -> None:
    config = base_config(tmp_path, rate=0)
    environ = {**os.environ, "IOPLEX_LOAD_PLUGINS": "web"}
    running = RunningHost(config, environ=environ).start()
    try:
        browser.get(running.url + "/")
        wait = WebDriverWait(browser, 20)
        wait.until(EC.text_to_be_present_in_element((By.ID, "stream-state"), "live"))
        wait.until(lambda d: _rules_fetches(d) >= 1)  # the page asked, and was told no
        time.sleep(1.5)
        assert not browser.find_element(By.ID, "rules").is_displayed()
        assert browser.find_element(By.ID, "health").is_displayed()
    finally:
        running.stop()


def test_a_runaway_rule_shows_why_it_stopped(browser: Any, tmp_path: Path) -> None:
    # Two rules that undo each other's write: the engine stops them as a runaway.
    rules = tmp_path / "loop.txt"
    rules.write_text(
        "IO dummy.door.front = true : IO dummy.door.front = false\n"
        "IO dummy.door.front = false : IO dummy.door.front = true\n"
    )
    config = base_config(tmp_path / "host", rate=0)
    config["plugins"]["events"] = {"files": [str(rules)], "watch": False}
    running = RunningHost(config).start()
    try:
        browser.get(running.url + "/")
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ROWS)) == 2)
        _set(running, "door.front", False)
        _set(running, "door.front", True)
        states = "#rules-table .rule-state"
        wait.until(
            lambda d: "runaway" in [e.text for e in d.find_elements(By.CSS_SELECTOR, states)]
        )
        badge = next(
            e for e in browser.find_elements(By.CSS_SELECTOR, states) if e.text == "runaway"
        )
        assert "stopped as a runaway" in badge.get_attribute("title")
        row = badge.find_element(By.XPATH, "./ancestor::tr")
        button = row.find_element(By.CSS_SELECTOR, "button.rule-toggle")
        button.click()
        detail = browser.find_element(By.ID, button.get_attribute("aria-controls"))
        wait.until(lambda d: detail.find_elements(By.CSS_SELECTOR, "tr.trace"))
        assert detail.find_element(By.CSS_SELECTOR, "p.error").text.startswith(
            "Disabled: stopped as a runaway"
        )
        newest = detail.find_element(By.CSS_SELECTOR, "tr.trace .trace-status")
        assert newest.text.startswith("stopped as a runaway")
        assert "error" in newest.get_attribute("class")
        browser.save_screenshot(str(tmp_path / "runaway.png"))
    finally:
        running.stop()
