"""The page in a real browser: headless Chromium loads a host's page, logs in, sees a live
value change over SSE, writes a point through the dialog, and a screenshot is saved."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from ioplex_web.testing import PASSWORDS, USERS, start_browser

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    driver = start_browser(tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()


def _row_value(driver: Any, name: str) -> str:
    cells = driver.find_elements(By.CSS_SELECTOR, f'#points-rows [data-name="{name}"] .value')
    return cells[0].text if cells else ""


def _severe(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_page_live_value_write_and_screenshot(make_host: Any, browser: Any, tmp_path: Path) -> None:
    running = make_host({"users": USERS}, rate=50)
    browser.get(running.url + "/")
    wait = WebDriverWait(browser, 20)
    # log in through the form
    form = wait.until(EC.visibility_of_element_located((By.ID, "login")))
    form.find_element(By.NAME, "name").send_keys("alice")
    form.find_element(By.NAME, "password").send_keys(PASSWORDS["alice"], Keys.ENTER)
    wait.until(EC.text_to_be_present_in_element((By.ID, "stream-state"), "live"))
    wait.until(lambda d: _row_value(d, "dummy.light.1") != "")
    # a live value changes without reloading: the simulation changes points at 50/s
    seen = {_row_value(browser, "dummy.temp.living")}
    wait.until(lambda d: _row_value(d, "dummy.temp.living") not in seen)
    # write through the dialog: filter, focus the row with the keyboard, Enter, type, submit
    filt = browser.find_element(By.ID, "filter")
    filt.send_keys("dummy.label")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#points-rows [data-name]")) == 1)
    table = browser.find_element(By.ID, "points")
    table.send_keys(Keys.ARROW_DOWN)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    dialog = wait.until(EC.visibility_of_element_located((By.ID, "write-dialog")))
    assert dialog.find_element(By.ID, "write-name").text == "dummy.label"
    box = dialog.find_element(By.ID, "write-value")
    box.clear()
    box.send_keys("written from the page", Keys.ENTER)
    wait.until(lambda d: _row_value(d, "dummy.label") == '"written from the page"')
    assert running.host.points["dummy.label"].value == "written from the page"
    # the kernel's refusal shows in the dialog
    filt.clear()
    filt.send_keys("dummy.light.1")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#points-rows [data-name]")) == 1)
    row = browser.find_element(By.CSS_SELECTOR, '#points-rows [data-name="dummy.light.1"]')
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).double_click(row).perform()
    box = wait.until(EC.visibility_of_element_located((By.ID, "write-value")))
    box.clear()
    box.send_keys("12345678901234567890123", Keys.ENTER)
    wait.until(lambda d: d.find_element(By.ID, "write-error").text != "")
    assert "64-bit" in browser.find_element(By.ID, "write-error").text
    assert running.host.points["dummy.light.1"].value != 12345678901234567890123
    browser.find_element(By.ID, "write-cancel").click()
    filt.send_keys(Keys.CONTROL, "a")
    filt.send_keys(Keys.BACKSPACE)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#points-rows [data-name]")) > 3)
    # the history chart of the data logger's raw samples
    from selenium.webdriver.support.ui import Select

    wait.until(lambda d: len(Select(d.find_element(By.ID, "chart-point")).options) > 0)
    Select(browser.find_element(By.ID, "level")).select_by_value("raw")
    Select(browser.find_element(By.ID, "chart-point")).select_by_value("dummy.temp.living")
    time.sleep(1.5)  # the logger commits about once a second
    browser.find_element(By.ID, "chart-load").click()
    wait.until(lambda d: "samples" in d.find_element(By.ID, "chart-note").text)
    assert browser.find_elements(By.CSS_SELECTOR, "#chart canvas")
    assert not browser.find_element(By.ID, "chart-note").text.startswith("0 ")
    browser.execute_script("document.getElementById('chart-title').scrollIntoView()")
    browser.save_screenshot(str(tmp_path / "chart.png"))
    browser.execute_script("window.scrollTo(0, 0)")
    # health panel shows the instance online
    wait.until(lambda d: "online" in d.find_element(By.ID, "health").text)
    # the events plugin is installed here but has no rules to run: the rules panel says so
    # in a line, with no empty table
    rules = browser.find_element(By.ID, "rules")
    wait.until(lambda d: "not running" in rules.find_element(By.CSS_SELECTOR, ".note").text)
    assert not rules.find_element(By.ID, "rules-table").is_displayed()
    shot = tmp_path / "page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    assert _severe(browser) == [] or all("401" in m for m in _severe(browser))


def test_page_with_100000_points_scrolls_virtually(
    make_host: Any, browser: Any, tmp_path: Path
) -> None:
    points = {f"bulk.p{i:06d}": i for i in range(100_000)}
    running = make_host(rate=0, extra_points=points)
    browser.get(running.url + "/")
    wait = WebDriverWait(browser, 120)
    wait.until(EC.text_to_be_present_in_element((By.ID, "points-count"), "of 100006"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#points-rows [data-name]")
    assert 0 < len(rows) < 100  # only what is in view exists
    started = time.monotonic()
    browser.execute_script(
        "const v = document.getElementById('points'); v.scrollTop = v.scrollHeight;"
    )
    wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '#points-rows [data-name="dummy.temp.living"]')
    )
    scrolled = time.monotonic() - started
    # a live change deep in the table shows
    browser.execute_script("const v = document.getElementById('points'); v.scrollTop = 50000 * 28;")
    wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '#points-rows [data-name="dummy.bulk.p050000"]')
    )
    running.call(running.host.ioservers["dummy"].set, "bulk.p050000", -1)
    wait.until(lambda d: _row_value(d, "dummy.bulk.p050000") == "-1")
    filt = browser.find_element(By.ID, "filter")
    filt.send_keys("*p09999?")
    wait.until(EC.text_to_be_present_in_element((By.ID, "points-count"), "(10 of 100006)"))
    browser.save_screenshot(str(tmp_path / "bulk.png"))
    assert scrolled < 10
