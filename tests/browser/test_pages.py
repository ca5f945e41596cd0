"""The pages in a real Chromium against real gateways, workers, Redis and the test origin."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlencode

from playwright.async_api import Page, expect

from tests.browser.conftest import NewPage
from tests.conftest import API_KEY, token
from tests.origin import Origin, expected_links
from tests.rpc import rpc
from tests.stack import Stack

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCRATCH = Path(tempfile.mkdtemp(prefix="pushgate-screenshots-"))


async def screenshot(page: Page, name: str) -> None:
    """Saves the page as screenshot-<name>.png, as tall as its content: into docs/ (the README
    shows them) when PUSHGATE_UPDATE_SCREENSHOTS=1, else beside the test run, so that running
    the tests leaves the work tree clean."""
    folder = DOCS if os.environ.get("PUSHGATE_UPDATE_SCREENSHOTS") == "1" else SCRATCH
    await page.set_viewport_size({"width": 1000, "height": 300})
    path = folder / f"screenshot-{name}.png"
    await page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 0


def unique_room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


async def connected(page: Page) -> None:
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")


async def join(page: Page, name: str, room: str) -> None:
    await connected(page)
    await page.fill("#name", name)
    await page.fill("#room", room)
    await page.click("#join-form button")
    await expect(page.locator("#room-info")).to_have_text(f"In {room} as {name}.")
    await expect(page.locator("#text")).to_be_enabled()


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.click("#send")
    await expect(page.locator("#text")).to_have_value("")


async def test_scrape_page_streams_a_job_to_its_links(
    stack: Stack, origin: Origin, new_page: NewPage
) -> None:
    page = await new_page(stack.gateways[0].http_url + "/")
    await connected(page)

    await page.fill("#url", origin.url("/pages/links.html"))
    await page.click("#submit-form button")
    job = page.locator("article.job").first
    events = job.locator(".events li")
    await expect(events).to_have_text(["queued", "started (attempt 1)", "result"])
    await expect(job.locator(".links a")).to_have_text(expected_links(origin, "links"))
    await expect(job.locator(".summary")).to_contain_text("200 · “Links fixture” · 8 links")
    await expect(job.locator(".failure")).to_have_count(0)

    await page.fill("#url", origin.url("/missing"))
    await page.click("#submit-form button")
    failed = page.locator("article.job").first
    await expect(failed.locator(".events li").last).to_have_text("failed: http_error")
    await expect(failed.locator(".failure .error-code")).to_have_text("http_error")
    await expect(failed.locator(".failure .error-message")).to_contain_text("404")
    await page.fill("#url", "")  # the screenshot shows the placeholder
    await screenshot(page, "scrape")


async def test_scrape_page_shows_a_refused_submission(stack: Stack, new_page: NewPage) -> None:
    page = await new_page(stack.gateways[1].http_url + "/")
    await connected(page)
    await page.fill("#url", "ftp://example.com/file")  # a valid URL for the form, not for pushgate
    await page.click("#submit-form button")
    job = page.locator("article.job").first
    await expect(job.locator(".failure .error-code")).to_have_text("-32602")
    await expect(job.locator(".failure .error-message")).to_contain_text("http")
    await expect(job.locator(".meta")).to_have_text("not submitted")


async def test_chat_across_two_replicas_with_history_on_join(
    stack: Stack, new_page: NewPage
) -> None:
    room = unique_room()
    alice = await new_page(stack.gateways[0].http_url + "/chat")
    bob = await new_page(stack.gateways[1].http_url + "/chat")
    await join(alice, "alice", room)
    await join(bob, "bob", room)

    await say(alice, "hello from alice")
    for page in (alice, bob):
        await expect(page.locator("#messages .text")).to_have_text(["hello from alice"])
    await say(bob, "hi alice, bob here")
    for page in (alice, bob):
        await expect(page.locator("#messages .text")).to_have_text(
            ["hello from alice", "hi alice, bob here"]
        )
        await expect(page.locator("#messages .author")).to_have_text(["alice", "bob"])

    carol = await new_page(stack.gateways[0].http_url + "/chat")
    await join(carol, "carol", room)
    await expect(carol.locator("#messages .text")).to_have_text(
        ["hello from alice", "hi alice, bob here"]
    )
    await say(carol, "carol joined late, saw it all")
    for page in (alice, bob, carol):
        await expect(page.locator("#messages li")).to_have_count(3)
    await screenshot(bob, "chat")


async def test_chat_page_fails_over_to_another_replica_and_misses_nothing(
    stack: Stack, new_page: NewPage
) -> None:
    home = stack.gateways[1]
    # The page comes from `home`; its first socket goes to `doomed`, which must allow that origin.
    doomed = await asyncio.to_thread(
        stack.start_gateway, {"PUSHGATE_ALLOWED_ORIGINS": home.http_url}
    )
    doomed_ws, home_ws = f"{doomed.ws_url}/ws", f"{home.ws_url}/ws"
    room = unique_room()
    query = urlencode({"room": room, "name": "dora", "gateways": f"{doomed_ws},{home_ws}"})
    page = await new_page(f"{home.http_url}/chat?{query}")
    status, texts = page.locator("#status"), page.locator("#messages .text")
    await expect(status).to_have_attribute("title", doomed_ws)
    await expect(page.locator("#room-info")).to_have_text(f"In {room} as dora.")

    async with rpc(stack.gateways[0].ws_url) as other:
        channel = f"chat:{room}"
        await other.result("publish", {"channel": channel, "data": {"name": "eve", "text": "m0"}})
        await expect(texts).to_have_text(["m0"])

        # Offline emulation blocks new sockets only, so the page cannot reconnect until we say.
        await page.context.set_offline(True)
        try:
            doomed.process.kill()
            await asyncio.to_thread(stack.stop_gateway, doomed)
            await expect(status).to_have_attribute("data-state", "disconnected")
            for n in range(1, 6):
                data = {"name": "eve", "text": f"m{n}"}
                await other.result("publish", {"channel": channel, "data": data})
        finally:
            await page.context.set_offline(False)

        await expect(status).to_have_attribute("data-state", "connected")
        await expect(status).to_have_attribute("title", home_ws)
        await expect(page.locator("#room-info")).to_have_attribute("data-recovered", "true")
        await other.result("publish", {"channel": channel, "data": {"name": "eve", "text": "m6"}})
        await expect(texts).to_have_text([f"m{n}" for n in range(7)])
        offsets = await page.locator("#messages li").evaluate_all(
            "items => items.map((item) => item.dataset.offset)"
        )
        assert len(set(offsets)) == 7


async def test_api_docs_render_the_openapi_document(stack: Stack, new_page: NewPage) -> None:
    page = await new_page(stack.gateways[0].http_url + "/docs")
    paths = page.locator(".opblock-summary-path")
    await expect(paths.first).to_be_visible(timeout=15_000)
    shown = set(await paths.all_inner_texts())
    assert {"/jobs", "/jobs/{request_id}", "/channels/{channel}/publications", "/sse"} <= {
        text.replace("\u200b", "") for text in shown
    }


async def test_admin_page_shows_the_gateways_numbers_live(
    auth_stack: Stack, new_page: NewPage
) -> None:
    gateway = auth_stack.gateways[0]
    page = await new_page(gateway.http_url + "/admin")
    await expect(page.locator("#status")).to_have_text("not signed in")
    await page.fill("#api-key", API_KEY)
    await page.click("#key-form button")
    connections = page.locator('tr[data-row="connections"] td')
    await expect(connections).to_be_visible()
    before = int((await connections.inner_text()).split()[0])
    async with rpc(gateway.ws_url) as one, rpc(gateway.ws_url) as two:
        await one.result("connect", {"token": token("admin-viewer")})
        await two.result("connect", {"token": token("admin-viewer")})
        await expect(connections).to_contain_text(f"{before + 2} (of them /ws:", timeout=10_000)
    await expect(page.locator('tr[data-row="redis"] td')).to_contain_text("ok, pub/sub up")
    await screenshot(page, "admin")
