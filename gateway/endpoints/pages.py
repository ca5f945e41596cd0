"""Browser pages: ``/`` (scrape a URL, watch its job) and ``/chat`` (rooms in the ``chat``
namespace), and ``/static/`` with ``pushgate.js``, the browser client of docs/protocol.md.

Plain files from the ``gateway/static`` package data: no build step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent.parent / "static"

# Scripts and styles only from this origin (nothing inline); sockets to any gateway replica.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def page(filename: str) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint serving ``static/<filename>`` as an HTML page with the pages' headers."""
    path = STATIC_DIR / filename

    async def page(_request: Request) -> Response:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    return page


ROUTES: list[BaseRoute] = [
    Route("/", page("index.html"), methods=["GET"]),
    Route("/chat", page("chat.html"), methods=["GET"]),
    Mount("/static", StaticFiles(packages=[("gateway", "static")]), name="static"),
]
