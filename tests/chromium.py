"""Headless Chromium for the tests (Debian's chromium and chromium-driver).

``make`` installs both (minios_lab/sysdeps.py); where they are missing the
tests that need a browser skip and say how to get it.
"""
from __future__ import annotations

import shutil

import pytest


def chrome():
    """A headless Chromium WebDriver, its console log kept; skip if absent."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(make setup installs them: python3 -m minios_lab.sysdeps)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)
