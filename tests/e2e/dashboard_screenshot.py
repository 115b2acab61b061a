"""Screenshots of Superset dashboards in headless Chromium, and the chart errors the page shows.

Run with the Python of Superset's virtualenv (it has selenium; the project's does not):

    <superset venv>/bin/python tests/e2e/dashboard_screenshot.py URL USER PASSWORD_FILE OUT_DIR SLUG...

Logs in through the login form, opens each dashboard, waits until no chart is loading, saves
``OUT_DIR/<slug>.png`` and prints one JSON object: slug -> {"png", "charts", "errors"} where
``charts`` counts the chart containers and ``errors`` the texts of error alerts on the page.
Needs Debian's ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1600, 2400)  # tall enough that every chart is in view (Superset renders charts in view)
LOAD_TIMEOUT_SECONDS = 180
SETTLE_SECONDS = 2
CHART = ".dashboard-component-chart-holder"
LOADING = ".loading, [data-test='loading-indicator']"
ERRORS = ".ant-alert-error, [data-test='error-alert'], .alert-danger"


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def log_in(driver: webdriver.Chrome, url: str, user: str, password: str) -> None:
    driver.get(f"{url}/login/")
    wait = WebDriverWait(driver, LOAD_TIMEOUT_SECONDS)
    name = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "input#username")))
    name.send_keys(user)
    field = driver.find_element(By.CSS_SELECTOR, "input#password")
    field.send_keys(password)
    field.send_keys(Keys.ENTER)
    wait.until(lambda d: "/login" not in d.current_url)


def capture(driver: webdriver.Chrome, url: str, slug: str, out: Path) -> dict:
    driver.get(f"{url}/superset/dashboard/{slug}/?standalone=1")
    wait = WebDriverWait(driver, LOAD_TIMEOUT_SECONDS)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, CHART))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, LOADING))
    time.sleep(SETTLE_SECONDS)  # the charts' drawing animations
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, LOADING))
    png = out / f"{slug}.png"
    driver.save_screenshot(str(png))
    errors = [e.text.strip() or "(error alert)" for e in driver.find_elements(By.CSS_SELECTOR, ERRORS)]
    return {"png": str(png), "charts": len(driver.find_elements(By.CSS_SELECTOR, CHART)), "errors": errors}


def main(url: str, user: str, password_file: str, out_dir: str, *slugs: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    driver = browser()
    try:
        log_in(driver, url, user, Path(password_file).read_text().strip())
        print(json.dumps({slug: capture(driver, url, slug, out) for slug in slugs}))
    finally:
        driver.quit()


if __name__ == "__main__":
    main(*sys.argv[1:])
