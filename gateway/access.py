"""Who is calling: bearer tokens, API keys and browser origins, read from request headers."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import Scope

from pushgate.core.auth import Authenticator
from pushgate.core.channels import Identity
from pushgate.core.errors import ErrorKind, PushgateError


def bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def identify(auth: Authenticator, headers: Headers) -> Identity:
    """The identity ``Authorization: Bearer <jwt>`` proves; AuthError when it proves none."""
    return auth.identify(bearer_token(headers))


def offered_api_key(headers: Headers) -> str | None:
    """``X-API-Key: <key>``, or ``Authorization: apikey <key>``."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return headers.get("x-api-key") or (value.strip() if scheme.lower() == "apikey" else None)


def api_key_valid(headers: Headers, keys: tuple[str, ...]) -> bool:
    offered = offered_api_key(headers)
    if not offered:
        return False
    # Check every key, so the time taken says nothing about which one nearly matched. As bytes:
    # compare_digest refuses str with non-ASCII characters, and header values may hold them
    # (Starlette decodes them as latin-1: encoding back gives the bytes the client sent).
    given = offered.encode("latin-1")
    matches = [hmac.compare_digest(given, key.encode()) for key in keys]
    return any(matches)


def require_api_key(headers: Headers, keys: tuple[str, ...], *, auth_enabled: bool) -> None:
    """Raise 401 unless ``headers`` offer one of ``keys``; without keys the server-side APIs are
    open only where auth is off altogether (``pushgate dev``)."""
    if (keys or auth_enabled) and not api_key_valid(headers, keys):
        raise PushgateError(ErrorKind.UNAUTHORIZED, "a valid X-API-Key is required")


def origin_allowed(scope: Scope, allowed: tuple[str, ...]) -> bool:
    """Browsers send Origin; others may not, and are not subject to this check.

    ``allowed``: origins, ``*`` for any; none allows only our own origin.
    Reads the raw ASGI headers: it runs on every WebSocket handshake.
    """
    origin = host = b""
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value
        elif name == b"host":
            host = value
    if not origin:
        return True
    text = origin.decode("latin-1").rstrip("/")
    entries = {entry.rstrip("/") for entry in allowed}
    if "*" in entries or text in entries:
        return True
    if entries:
        return False
    try:
        netloc = urlsplit(text).netloc
    except ValueError:  # "http://[": not an origin any browser sends, so not ours either
        return False
    return netloc == host.decode("latin-1")
