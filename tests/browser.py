"""A real headless Chromium for the console's browser tests: Debian's ``chromium`` package (the Makefile
installs it with apt-get) driven by Playwright for Python, with no browser download.

``chromium()`` skips the calling test, saying why, only where the browser or Playwright is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOT_DIR_ENV = "CONSOLE_SCREENSHOT_DIR"  # where the tests also save their page screenshots (not DRIFTLINE_*: tests clear those)


def executable() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser (Playwright ``Browser``); the test skips with the reason if none can run."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (make venv installs it)")
    path = executable()
    if path is None:
        pytest.skip("no chromium on PATH: `apt-get install chromium` (make test does it where apt-get works)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    """A full-page PNG in ``tmp_path``, copied to ``$CONSOLE_SCREENSHOT_DIR`` when that is set."""
    out = tmp_path / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    if target := os.environ.get(SCREENSHOT_DIR_ENV):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(target) / out.name)
    return out
