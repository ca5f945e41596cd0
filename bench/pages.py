"""Deterministic HTML pages for the jobs and parse workloads, shaped like real article pages:
a head, navigation, paragraphs of text with inline links, a footer. No randomness, so every run
parses the same bytes."""

from __future__ import annotations

WORDS = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
    "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "enim",
    "ad", "minim", "veniam", "quis", "nostrud", "exercitation", "ullamco", "laboris",
)  # fmt: skip


def _text(n_words: int, seed: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(n_words))


def _href(i: int) -> str:
    """A mix of the link forms pages use: relative, root-relative, absolute, with fragments."""
    kind = i % 5
    if kind == 0:
        return f"/articles/{i}/index.html"
    if kind == 1:
        return f"section-{i}.html#part-{i % 7}"
    if kind == 2:
        return f"https://example.org/external/{i}?ref=bench&amp;id={i}"
    if kind == 3:
        return f"../topics/{i}/"
    return f"//cdn.example.net/assets/{i}.html"


def article(links: int, target_bytes: int, title: str = "Benchmark page") -> bytes:
    """A page with ``links`` distinct links, padded with text to about ``target_bytes``."""
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/site.css">'
        '<script src="/static/site.js" defer></script>'
        "</head>\n<body><header><nav><ul>"
    )
    nav = "".join(f'<li><a href="/nav/{i}">Menu {i}</a></li>' for i in range(min(10, links)))
    parts = [head, nav, "</ul></nav></header>\n<main><article>"]
    body_links = range(min(10, links), links)
    per_paragraph = 5
    paragraphs = [
        list(body_links[i : i + per_paragraph]) for i in range(0, len(body_links), per_paragraph)
    ]
    fixed = sum(len(p) for p in parts) + 200
    link_bytes = sum(len(_href(i)) + 40 for i in body_links)
    words_each = max(5, (target_bytes - fixed - link_bytes) // max(1, len(paragraphs)) // 6)
    for n, group in enumerate(paragraphs):
        chunks = [_text(words_each // (len(group) + 1), n * 31 + k) for k in range(len(group) + 1)]
        inline = "".join(
            f'{chunks[k]} <a href="{_href(i)}" class="ref">link {i}</a> '
            for k, i in enumerate(group)
        )
        parts.append(f"<p>{inline}{chunks[-1]}.</p>\n")
    parts.append("</article></main><footer><p>&copy; bench</p></footer></body></html>\n")
    return "".join(parts).encode()


def parse_page() -> bytes:
    """The parse workload's page: about 200 KB with 1,000 links."""
    return article(1000, 200_000, "Parse benchmark")


def small_page() -> bytes:
    """The jobs workload's origin page: about 5 KB with 20 links."""
    return article(20, 5_000, "Jobs benchmark")
