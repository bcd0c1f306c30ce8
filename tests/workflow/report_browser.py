"""The generated report opened in a real browser: Debian's Chromium driven by Playwright for Python.

Nothing is downloaded at test time: Playwright drives the system browser (``executable_path``). Where the
browser or Playwright is missing the tests say so and skip, unless ``MEDNCA_REQUIRE_BROWSER=1`` (set by CI),
which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
"""Executable names of a system Chromium, in the order looked for."""
REQUIRED = "MEDNCA_REQUIRE_BROWSER"


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail when the environment requires the browser tests to run."""
    if os.environ.get(REQUIRED) == "1":
        pytest.fail(f"{reason}, and {REQUIRED}=1 requires the browser tests")
    pytest.skip(reason)


def system_chromium() -> str:
    """The path of the system Chromium (skips or fails when there is none)."""
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    unavailable("no system Chromium (apt-get install chromium)")
    raise AssertionError("unreachable")


@dataclass
class PageReport:
    """What a page did while it loaded: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)


@contextmanager
def open_page(html: Path, width: int, height: int = 900) -> Iterator[tuple[object, PageReport]]:
    """The report at ``html`` loaded in headless Chromium with a ``width`` x ``height`` viewport, and the
    errors its console and scripts reported."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install playwright)")
    executable = system_chromium()
    report = PageReport()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda message: message.type == "error" and report.errors.append(message.text))
            page.on("pageerror", lambda error: report.errors.append(str(error)))
            page.goto(html.resolve().as_uri(), wait_until="load")
            yield page, report
        finally:
            browser.close()


BROKEN_IMAGES = """() => Array.from(document.images)
    .filter((image) => !image.complete || image.naturalWidth === 0)
    .map((image) => image.alt || image.src.slice(0, 40))"""
"""The images of the page that did not decode."""

BROKEN_LINKS = """() => Array.from(document.querySelectorAll('a[href^="#"]'))
    .map((link) => decodeURIComponent(link.getAttribute("href").slice(1)))
    .filter((id) => id && !document.getElementById(id))"""
"""The targets of in-page links that name no element."""

PAGE_OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
"""How many pixels the page is wider than the window (0 when nothing sticks out)."""

UNMARKED_SCROLLERS = """() => Array.from(document.querySelectorAll(".wide"))
    .filter((box) => box.scrollWidth > box.clientWidth + 1 && !box.classList.contains("scrolls"))
    .map((box) => (box.querySelector("table") || box).id || "a box")"""
"""Boxes whose table is wider than they are but which do not show that they scroll."""

CLAIMS_FIRST = """() => {
    const claims = document.getElementById("claims-table"), details = document.getElementById("findings");
    const summary = document.getElementById("summary");
    return Boolean(claims && details && summary
        && (summary.compareDocumentPosition(claims) & Node.DOCUMENT_POSITION_FOLLOWING)
        && (claims.compareDocumentPosition(details) & Node.DOCUMENT_POSITION_FOLLOWING));
}"""
"""Whether the claims table comes after the run summary and before the detailed findings."""

FIGURES_KEPT_WHOLE = """() => Array.from(document.querySelectorAll("figure"))
    .every((figure) => getComputedStyle(figure).breakInside === "avoid"
        && figure.querySelector("figcaption") !== null)"""
"""Whether, in print media, every figure is kept on one page together with its caption."""
