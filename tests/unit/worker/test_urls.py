"""The fast resolver gives exactly what ``urljoin`` gives (``exact_link``), for any href."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from worker.urls import LinkResolver, exact_link

BASES = [
    "http://127.0.0.1:8080/articles/page.html",
    "https://example.com",
    "https://example.com/",
    "http://example.com/a/b/?q=1#frag",
    "http://EXAMPLE.com/dir/",
    "http://[::1]:8080/x/y",
    "http://example.com//double/slash",
    "http://example.com/a/./b",
    "http://user@example.com/p",
    "http://example.com:99999/bad-port",
]
PIECES = [
    "a", "b.html", "/", "//", ".", "..", "./", "../", "?", "?q=1", "#", "#f", ";p", ":",
    "http:", "https:", "HTTP:", "mailto:", "javascript:", "ftp:", "1a:", "é:", "c++:", "//h",
    "//h:80", "//[::1]", "//h%20", "@", " ", "\t", "\n", "%41", "\\", "x:1", "index.html",
    "example.org", "&amp;", "~", "[", "]",
]  # fmt: skip
hrefs = st.lists(st.sampled_from(PIECES), max_size=7).map("".join) | st.text(max_size=20)


@pytest.mark.parametrize("base", BASES)
@given(href=hrefs)
@settings(max_examples=400, deadline=None)
@example(href="https://example.org/external/1?ref=bench&amp;id=1")
@example(href="//cdn.example.net/assets/4.html")
@example(href="../topics/3/")
@example(href="section-1.html#part-1")
@example(href="/articles/0/index.html")
@example(href="http://h:8080/x")
@example(href="a//b")
@example(href="  /spaced  ")
def test_fast_resolution_equals_urljoin(base: str, href: str) -> None:
    assert LinkResolver(base).resolve(href) == exact_link(base, href)
