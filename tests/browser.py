"""Headless Chromium for the report's tests: skipped without chromium + chromedriver, a failure
under CI=true (.ci/run installs them)."""

import os
import shutil
from contextlib import contextmanager

import pytest


@contextmanager
def headless(height: int = 1000):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but chromium / chromedriver are missing (.ci/run installs Debian's chromium and chromium-driver)")
        pytest.skip("needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size=1300,{height}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield browser
    finally:
        browser.quit()


# [complete, natural width, natural height, shown width, alt, inside a closed <details>] per image
IMAGES_JS = ("return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight,"
             " i.getBoundingClientRect().width, i.alt, !!(i.closest('details') && !i.closest('details').open)])")


def broken_images(images: list) -> list[str]:
    """Images that did not decode, or that are on screen with no size (those in a closed
    <details>, shown on demand, count only if they did not decode)."""
    return [alt for complete, w, h, shown, alt, hidden in images if not (complete and w > 0 and h > 0 and (shown > 0 or hidden))]
