"""Headless Chromium for the tests (Debian's chromium and chromium-driver).

``make`` installs both (minios_lab/build/sysdeps.py); where they are missing the
tests that need a browser skip and say how to get it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

import pytest


def _loopback_service_class():
    """ChromeDriver's Service, reached at 127.0.0.1 rather than "localhost".

    Selenium asks for http://localhost:PORT; a machine whose /etc/hosts is
    missing (a debootstrapped chroot, some minimal containers) cannot
    resolve that name, and the browser never starts. The address works
    everywhere.
    """
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common import utils

    class LoopbackService(Service):
        @property
        def service_url(self) -> str:
            return f"http://127.0.0.1:{self.port}"

        def is_connectable(self) -> bool:
            return utils.is_url_connectable(self.port, host="127.0.0.1")

    return LoopbackService


@contextlib.contextmanager
def chrome() -> Iterator[object]:
    """A headless Chromium WebDriver, its console log kept; skip if absent.
    Chromium's temporary files (its singleton socket, which it leaves behind
    in /tmp) go to a folder of its own, removed with the driver."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(make setup installs them: python3 -m minios_lab.build.sysdeps)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                # DevTools over a pipe, not a localhost port (see above)
                "--remote-debugging-pipe",
                "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    scratch = tempfile.mkdtemp(prefix="minios-lab-chromium-")
    service = _loopback_service_class()(driver, env={**os.environ,
                                                     "TMPDIR": scratch})
    try:
        browser = webdriver.Chrome(service=service, options=options)
        try:
            yield browser
        finally:
            browser.quit()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
