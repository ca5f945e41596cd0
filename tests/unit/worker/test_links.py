"""parse_page: title and links as a browser would resolve them."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup, Tag
from bs4.filter import SoupStrainer
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.origin import BASE_EXPECTED, BASE_PAGE, LINKS_EXPECTED, LINKS_PAGE, many_links_page
from worker.links import DEFAULT_MAX_LINKS, parse_page
from worker.urls import LinkResolver, join

ORIGIN = "http://127.0.0.1:8000"
PAGE = "http://example.com/dir/page.html"


def links(html: str, page_url: str = PAGE) -> list[str]:
    return parse_page(html.encode(), page_url).links


def anchors(*hrefs: str) -> str:
    return "".join(f'<a href="{href}">x</a>' for href in hrefs)


@pytest.mark.parametrize(
    ("html", "path", "expected"),
    [
        (LINKS_PAGE, "/pages/links.html", LINKS_EXPECTED),
        (BASE_PAGE, "/pages/base.html", BASE_EXPECTED),
    ],
)
def test_fixture_pages(html: str, path: str, expected: tuple[str, ...]) -> None:
    assert links(html, ORIGIN + path) == [link.format(base=ORIGIN) for link in expected]


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("other.html", "http://example.com/dir/other.html"),
        ("./sub/x", "http://example.com/dir/sub/x"),
        ("../up.html", "http://example.com/up.html"),
        ("../../../too-far", "http://example.com/too-far"),
        ("/abs?q=1", "http://example.com/abs?q=1"),
        ("?only=query", "http://example.com/dir/page.html?only=query"),
        ("//cdn.example.org/lib.js", "http://cdn.example.org/lib.js"),
        ("HTTPS://Example.org/Case", "https://Example.org/Case"),
    ],
)
def test_relative_links_resolve_against_the_page(href: str, expected: str) -> None:
    assert links(anchors(href)) == [expected]


def test_first_base_href_wins_and_is_itself_resolved_against_the_page() -> None:
    html = '<base target="_top"><base href="../other/"><base href="/ignored/">' + anchors("x")
    assert links(html) == ["http://example.com/other/x"]


def test_unparseable_base_falls_back_to_the_page() -> None:
    assert links('<base href="http://[::1">' + anchors("x")) == ["http://example.com/dir/x"]


def test_fragments_are_removed_and_duplicates_dropped_in_document_order() -> None:
    html = anchors("b", "a#one", "#top", "a#two", "b", "", "a")
    assert links(html) == [
        "http://example.com/dir/b",
        "http://example.com/dir/a",
        "http://example.com/dir/page.html",
    ]


def test_only_http_and_https_links_are_kept() -> None:
    html = anchors(
        "mailto:someone@example.com",
        "javascript:alert(1)",
        "data:text/html,hi",
        "ftp://example.com/file",
        "tel:+100",
        "https://example.com/kept",
    )
    assert links(html) == ["https://example.com/kept"]


def test_whitespace_around_and_tabs_or_newlines_inside_are_removed() -> None:
    html = anchors("  padded.html\n", "\tsp\nlit\r.html ")
    assert links(html) == [
        "http://example.com/dir/padded.html",
        "http://example.com/dir/split.html",
    ]


def test_hrefs_that_do_not_parse_are_skipped() -> None:
    html = anchors("http://[::1", "http://host:99999/", "https:", "after.html")
    assert links(html) == ["http://example.com/dir/after.html"]


def test_anchor_without_href_is_ignored() -> None:
    assert links('<a name="x">x</a><a>y</a>') == []


def test_title_whitespace_is_collapsed() -> None:
    assert parse_page(b"<title>\n  Hello \t  world\n</title>", PAGE).title == "Hello world"


@pytest.mark.parametrize(
    "html", [b"<p>no title</p>", b"<title>   \n </title>", b"", b"just text, no tags"]
)
def test_missing_or_blank_title_is_none(html: bytes) -> None:
    assert parse_page(html, PAGE).title is None


def test_http_charset_decodes_the_body() -> None:
    body = "<title>caf\u00e9</title>".encode("cp1252")
    assert parse_page(body, PAGE, "windows-1252").title == "caf\u00e9"


def test_meta_charset_is_used_without_an_http_charset() -> None:
    body = '<meta charset="koi8-r"><title>\u043c\u0438\u0440</title>'.encode("koi8-r")
    assert parse_page(body, PAGE).title == "\u043c\u0438\u0440"


def test_http_charset_beats_meta_charset() -> None:
    body = '<meta charset="koi8-r"><title>caf\u00e9</title>'.encode()
    assert parse_page(body, PAGE, "utf-8").title == "caf\u00e9"


def test_latin1_label_is_read_as_windows_1252_like_browsers_do() -> None:
    body = "<title>5 \u20ac</title>".encode("cp1252")
    assert parse_page(body, PAGE, "latin-1").title == "5 \u20ac"


def test_a_byte_outside_the_declared_charset_does_not_lose_the_page() -> None:
    # lxml, given from_encoding="us-ascii", would drop every tag of this document.
    body = b"<title>ok</title>" + anchors("a").encode() + b"caf\xc3\xa9" + anchors("b").encode()
    parsed = parse_page(body, PAGE, "us-ascii")
    assert parsed.title == "ok"
    assert parsed.links == ["http://example.com/dir/a", "http://example.com/dir/b"]


def test_unknown_charset_falls_back_to_sniffing() -> None:
    assert parse_page("<title>caf\u00e9</title>".encode(), PAGE, "no-such-charset").title == (
        "caf\u00e9"
    )


@pytest.mark.parametrize("label", ["idna", "undefined", "utf-8\x00"])
def test_a_charset_that_cannot_decode_a_page_falls_back_to_sniffing(label: str) -> None:
    # These labels name codecs that raise on any body (they used to fail the whole job).
    assert parse_page("<title>caf\u00e9</title>".encode(), PAGE, label).title == "caf\u00e9"


def test_undeclared_non_utf8_bytes_are_guessed_as_windows_1252() -> None:
    assert parse_page(b"<title>caf\xe9</title>", PAGE).title == "caf\u00e9"


def test_xhtml_with_xml_declaration_parses_without_warnings() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?>\n'
        b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>X</title></head>'
        b'<body><a href="x.html">x</a></body></html>'
    )
    parsed = parse_page(body, PAGE, None)
    assert (parsed.title, parsed.links) == ("X", ["http://example.com/dir/x.html"])


def test_links_past_the_cap_are_cut_and_said_so() -> None:
    page = parse_page(anchors(*(f"/{n}" for n in range(50))).encode(), PAGE, max_links=10)
    assert page.links == [f"http://example.com/{n}" for n in range(10)]
    assert page.links_truncated is True
    exact = parse_page(
        anchors(*(f"/{n}" for n in range(10)), "/0", "/1").encode(), PAGE, max_links=10
    )
    assert len(exact.links) == 10
    assert exact.links_truncated is False  # repeats of a kept href do not count


def test_a_page_of_200k_links_is_cut_at_the_cap() -> None:
    page = parse_page(many_links_page(200_000), PAGE)
    assert page.title == "Many links"
    assert len(page.links) == DEFAULT_MAX_LINKS
    assert page.links[-1] == f"http://example.com/l/{DEFAULT_MAX_LINKS - 1}"
    assert page.links_truncated is True


# The scan must agree with bs4's tree (the extractor it replaced) on whatever markup comes.
_TAGS = st.sampled_from(["a", "base", "title", "div", "p", "span", "table", "td", "script", "b"])
_HREFS = st.sampled_from(["x", "/y", "../z", "#f", "http://o.example/q", " s ", "mailto:m", ""])
_TEXT = st.sampled_from(["", "t", " a  b ", "&amp;", "<", "\n"])


@st.composite
def _markup(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        tag = draw(_TAGS)
        href = f' href="{draw(_HREFS)}"' if draw(st.booleans()) else ""
        inner = draw(_markup(depth + 1)) if depth < 3 else ""
        closed = draw(st.booleans())
        parts.append(f"<{tag}{href}>{draw(_TEXT)}{inner}" + (f"</{tag}>" if closed else ""))
    return "".join(parts)


def _with_bs4(html: str, page_url: str) -> tuple[str | None, list[str]]:
    soup = BeautifulSoup(html, "lxml", parse_only=SoupStrainer(["a", "base", "title"]))
    title_tag = soup.find("title")
    title = None
    if isinstance(title_tag, Tag):
        title = " ".join(title_tag.get_text().split()) or None
    base = page_url
    for tag in soup.find_all("base"):
        href = tag.get("href") if isinstance(tag, Tag) else None
        if isinstance(href, str):
            joined = join(page_url, href)
            base = page_url if joined is None else joined.geturl()
            break
    resolve = LinkResolver(base).resolve
    found: dict[str, None] = {}
    for tag in soup.find_all("a"):
        href = tag.get("href") if isinstance(tag, Tag) else None
        link = resolve(href) if isinstance(href, str) else None
        if link is not None:
            found[link] = None
    return title, list(found)


@settings(max_examples=300, deadline=None)
@given(_markup())
def test_the_scan_agrees_with_bs4(body: str) -> None:
    html = f"<html><head></head><body>{body}</body></html>"
    page = parse_page(html.encode(), PAGE)
    assert (page.title, page.links) == _with_bs4(html, PAGE)
