"""fetch_page against the real test origin over loopback: every outcome, no HTTP mocks."""

from __future__ import annotations

import tracemalloc

import pytest

from pushgate.core.events import FailureCode
from pushgate.core.settings import FetchSettings
from tests.origin import LINKS_PAGE, Origin, expected_links
from worker.fetch import FetchError, Page, build_client, fetch_page
from worker.links import parse_page

MIB = 1024 * 1024
LIMITS = FetchSettings(timeout=10.0, max_bytes=5 * MIB, max_redirects=3, user_agent="pushgate-test")


async def fetch(url: str, limits: FetchSettings = LIMITS, *, allow_private: bool = True) -> Page:
    async with build_client(limits, allow_private=allow_private) as client:
        return await fetch_page(client, url, limits)


async def fetch_error(
    url: str, limits: FetchSettings = LIMITS, *, allow_private: bool = True
) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetch(url, limits, allow_private=allow_private)
    return caught.value


@pytest.mark.parametrize(("name", "title"), [("links", "Links fixture"), ("base", "Base fixture")])
async def test_fixture_page_is_fetched_and_its_links_extracted(
    origin: Origin, name: str, title: str
) -> None:
    url = origin.url(f"/pages/{name}.html")
    page = await fetch(url)
    assert (page.final_url, page.status_code, page.charset) == (url, 200, "utf-8")
    parsed = parse_page(page.body, page.final_url, page.charset)
    assert parsed.title == title
    assert parsed.links == expected_links(origin, name)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_bodies_are_inflated(origin: Origin, coding: str) -> None:
    page = await fetch(origin.url(f"/pages/links.html?coding={coding}"))
    assert page.body == LINKS_PAGE.encode()


async def test_redirects_are_followed_to_the_final_url(origin: Origin) -> None:
    page = await fetch(origin.url("/redirect?to=/pages/base.html"))
    assert page.final_url == origin.url("/pages/base.html")


FAILURES = [
    ("/huge", FailureCode.TOO_LARGE, False),
    ("/huge-declared", FailureCode.TOO_LARGE, False),
    ("/gzip-bomb", FailureCode.TOO_LARGE, False),
    ("/redirect-loop", FailureCode.TOO_MANY_REDIRECTS, False),
    ("/image.png", FailureCode.NOT_HTML, False),
    ("/missing", FailureCode.HTTP_ERROR, False),
    ("/error", FailureCode.HTTP_ERROR, True),
    ("/pages/links.html?coding=br", FailureCode.HTTP_ERROR, False),
    ("/redirect?to=ftp://example.com/file", FailureCode.INVALID_URL, False),
    ("/redirect?to=mailto:someone@example.com", FailureCode.INVALID_URL, False),
]


@pytest.mark.parametrize(("path", "code", "transient"), FAILURES)
async def test_failures_carry_their_code(
    origin: Origin, path: str, code: FailureCode, transient: bool
) -> None:
    error = await fetch_error(origin.url(path))
    assert (error.code, error.transient) == (code, transient)
    assert error.message


async def test_a_dripping_body_hits_the_total_deadline(origin: Origin) -> None:
    # A byte a second never trips the per-read timeout; only the deadline for the attempt does.
    limits = FetchSettings(timeout=1.5, max_bytes=MIB, max_redirects=3, user_agent="pushgate-test")
    error = await fetch_error(origin.url("/drip"), limits)
    assert (error.code, error.transient) == (FailureCode.TIMEOUT, True)


async def test_a_gzip_bomb_is_never_inflated_past_the_cap_in_memory(origin: Origin) -> None:
    limits = FetchSettings(timeout=10.0, max_bytes=MIB, max_redirects=0, user_agent="pushgate-test")
    await fetch_error(origin.url("/gzip-bomb"), limits)  # the origin builds its bomb once
    tracemalloc.start()
    try:
        error = await fetch_error(origin.url("/gzip-bomb"), limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == FailureCode.TOO_LARGE
    assert peak < 8 * MIB  # the bomb inflates to 50 MiB


async def test_a_transient_error_then_success_on_the_same_client(origin: Origin) -> None:
    url = origin.url("/flaky?key=test-fetch&fail=1")
    async with build_client(LIMITS, allow_private=True) as client:
        with pytest.raises(FetchError) as caught:
            await fetch_page(client, url, LIMITS)
        assert (caught.value.code, caught.value.transient) == (FailureCode.HTTP_ERROR, True)
        page = await fetch_page(client, url, LIMITS)
    assert page.status_code == 200
    assert origin.hits("/flaky?key=test-fetch") == 2


async def test_client_still_works_after_aborted_responses(origin: Origin) -> None:
    async with build_client(LIMITS, allow_private=True) as client:
        for path in ["/huge", "/huge-declared", "/gzip-bomb"]:
            with pytest.raises(FetchError):
                await fetch_page(client, origin.url(path), LIMITS)
        page = await fetch_page(client, origin.url("/pages/links.html"), LIMITS)
    assert page.body == LINKS_PAGE.encode()


async def test_loopback_is_blocked_unless_private_addresses_are_allowed(origin: Origin) -> None:
    error = await fetch_error(origin.url("/pages/links.html"), allow_private=False)
    assert (error.code, error.transient) == (FailureCode.BLOCKED_ADDRESS, False)


async def test_unresolvable_host_is_a_dns_error() -> None:
    error = await fetch_error("http://nonexistent.invalid/")
    assert error.code == FailureCode.DNS_ERROR


async def test_closed_port_is_a_transient_connect_error(origin: Origin) -> None:
    error = await fetch_error(origin.closed_port_url())
    assert (error.code, error.transient) == (FailureCode.CONNECT_ERROR, True)


@pytest.mark.parametrize(
    "url", ["ftp://x", "mailto:someone@example.com", "http:///path", "//example.com/", "not a url"]
)
async def test_invalid_urls_are_refused_before_any_connection(url: str) -> None:
    error = await fetch_error(url, allow_private=False)
    assert (error.code, error.transient) == (FailureCode.INVALID_URL, False)
