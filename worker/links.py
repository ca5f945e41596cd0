"""Pull the title and the outgoing http(s) links out of an HTML page."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from bs4 import BeautifulSoup, Tag
from bs4.dammit import EncodingDetector
from bs4.filter import SoupStrainer

from worker.urls import LinkResolver, join

# Only these tags are built into the tree: half the parse time of a full soup.
_STRAINER = SoupStrainer(["a", "base", "title"])
_ASCII_WHITESPACE = re.compile(r"[\t\n\f\r ]+")
# Labels that browsers decode as a wider encoding (WHATWG Encoding Standard), keyed by the name
# Python's codec registry gives them. Pages labelled latin-1 routinely contain windows-1252 bytes.
_BROWSER_CODECS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "gb2312": "gbk",
    "euc_kr": "cp949",
}
# lxml is handed text, so an XML declaration carries nothing it needs; bs4 warns about it.
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*>")


@dataclass(frozen=True, slots=True)
class ParsedPage:
    title: str | None
    links: list[str]


def parse_page(body: bytes, page_url: str, charset: str | None = None) -> ParsedPage:
    """Title and de-duplicated absolute http(s) links of ``body``, fetched from ``page_url``.

    ``charset`` is the one the Content-Type header named, if any.
    """
    text = _XML_DECLARATION.sub("", _decode(body, charset))
    # Without a "<" there is no tag to find, and bs4 would warn that the text looks like a path.
    if "<" not in text:
        return ParsedPage(title=None, links=[])
    soup = BeautifulSoup(text, "lxml", parse_only=_STRAINER)
    return ParsedPage(title=_title(soup), links=_links(soup, page_url))


def _decode(body: bytes, charset: str | None) -> str:
    """Decode as a browser would: byte-order mark, HTTP charset, <meta> charset, then a guess.

    We decode instead of passing ``from_encoding``: lxml drops the whole document when a single
    byte does not fit the named encoding (a stray non-ASCII byte under ``charset=us-ascii``), and
    it silently ignores Python spellings such as ``latin-1``.
    """
    body, bom = EncodingDetector.strip_byte_order_mark(body)
    for label in (bom, charset, EncodingDetector.find_declared_encoding(body, is_html=True)):
        text = _decode_as(body, label)
        if text is not None:
            return text
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", "replace")


def _decode_as(body: bytes, label: str | None) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip()).name
        return body.decode(_BROWSER_CODECS.get(name, name), "replace")
    # An unknown label, a codec that is not a text encoding (rot13), or one that cannot decode
    # leniently ("idna" refuses the "replace" error handler; "undefined" refuses everything).
    except (LookupError, ValueError):
        return None


def _title(soup: BeautifulSoup) -> str | None:
    tag = soup.find("title")
    if not isinstance(tag, Tag):
        return None
    return _ASCII_WHITESPACE.sub(" ", tag.get_text()).strip(" ") or None


def _links(soup: BeautifulSoup, page_url: str) -> list[str]:
    resolve = LinkResolver(_document_base(soup, page_url)).resolve
    links: dict[str, None] = {}  # an ordered set
    for tag in soup.find_all("a"):
        href = _href(tag)
        link = None if href is None else resolve(href)
        if link is not None:
            links[link] = None
    return list(links)


def _document_base(soup: BeautifulSoup, page_url: str) -> str:
    """The first ``<base href>`` resolved against the page, as browsers use it; else the page."""
    for tag in soup.find_all("base"):
        href = _href(tag)
        if href is not None:
            base = join(page_url, href)
            return page_url if base is None else base.geturl()
    return page_url


def _href(tag: object) -> str | None:
    href = tag.get("href") if isinstance(tag, Tag) else None
    return href if isinstance(href, str) else None
