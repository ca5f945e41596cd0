"""Browser fixtures: Debian's Chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every wait in these tests is bounded by this (Playwright's expect and waits).
WAIT_MS = 20_000
VIEWPORT: ViewportSize = {"width": 1000, "height": 720}

expect.set_options(timeout=WAIT_MS)

NewPage = Callable[[str], Awaitable[Page]]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session; Playwright gives it a fresh, temporary profile."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: browser tests need Debian's chromium "
            "(bash scripts/test.sh installs it, or: apt-get install -y chromium)"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A browser context of the test's own (cookies, storage, network state)."""
    created = await browser.new_context(viewport=VIEWPORT)
    created.set_default_timeout(WAIT_MS)
    try:
        yield created
    finally:
        await created.close()


@pytest.fixture
async def new_page(context: BrowserContext) -> AsyncIterator[NewPage]:
    """Opens pages in the test's context; an uncaught error or a console error in any of them
    (a refused script or style, say) fails the test."""
    errors: list[str] = []

    def note_console(page: Page, message: ConsoleMessage) -> None:
        # Failed socket attempts are expected where a gateway goes away; CSP refusals are not.
        if message.type == "error" and not message.text.startswith("WebSocket connection to"):
            errors.append(f"{page.url}: console: {message.text}")

    async def open_page(url: str) -> Page:
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: note_console(page, message))
        await page.goto(url)
        return page

    yield open_page
    assert not errors, errors
