"""JWT verification of connection tokens, and the gateway's own channel-scoped subscribe tokens.

Connection tokens come from the app's backend (HS256 with a shared secret, or RS256/ES256 with a
public key; several of each at once, see ``keyring``). Subscribe tokens are minted by the
gateway itself, carry the audience ``pushgate:subscribe`` (so one can never pass as a
connection token: those must have no audience) and open exactly one channel.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from pushgate.core.channels import ANONYMOUS, Identity
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.keyring import HMAC_ALGORITHM, KeyRing, UnknownKeyIdError, VerifyKey
from pushgate.core.settings import AuthSettings

SUBSCRIBE_AUDIENCE = "pushgate:subscribe"
_LEEWAY_SECONDS = 5


class AuthError(PushgateError):
    """A token is missing, malformed, badly signed or expired."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.UNAUTHORIZED, message)


class Authenticator:
    """Checks connection tokens against every configured key, and mints subscribe tokens."""

    def __init__(self, settings: AuthSettings) -> None:
        self.enabled = settings.enabled
        self._keys = KeyRing(settings)
        self._signing_secret = settings.signing_secret
        self._subscribe_keys = [VerifyKey(HMAC_ALGORITHM, s) for s in settings.subscribe_secrets]
        self._subscribe_ttl = settings.subscribe_token_ttl

    def identify(self, token: str | None) -> Identity:
        """The identity a connection token proves; anonymous whenever auth is off."""
        if not self.enabled:
            return ANONYMOUS
        if token is None:
            raise AuthError("a token is required")
        claims = self._decode(token)
        expires = claims.get("exp")
        return Identity(
            user=claims["sub"],
            channels=tuple(claims.get("channels", ())),
            expires_at=None if expires is None else int(expires),
        )

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            claims = _verified(token, self._candidate_keys(token), ["sub"])
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        check_claim_types(claims)
        if not claims["sub"]:
            raise AuthError("the sub claim must be a non-empty string")
        return claims

    def _candidate_keys(self, token: str) -> list[VerifyKey]:
        header = jwt.get_unverified_header(token)
        algorithm, kid = header.get("alg"), header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("invalid token: kid must be a string")
        try:
            keys = self._keys.candidates(str(algorithm), kid)
        except UnknownKeyIdError:
            raise AuthError("invalid token: unknown key id (kid)") from None
        if not keys:
            raise AuthError(f"tokens signed with {algorithm!r} are not accepted")
        return keys

    def issue_subscribe_token(self, channel: str, user: str | None) -> str | None:
        """A short-lived token opening ``channel`` only; None when auth is off."""
        if not self.enabled:
            return None
        now = int(time.time())
        claims = {
            "aud": SUBSCRIBE_AUDIENCE,
            "channel": channel,
            "sub": user or "",
            "iat": now,
            "exp": now + self._subscribe_ttl,
        }
        return jwt.encode(claims, self._signing_secret, algorithm="HS256")

    def subscribe_token_channel(self, token: str) -> str:
        """The one channel a subscribe token opens."""
        try:
            required = ["exp", "channel"]
            claims = _verified(token, self._subscribe_keys, required, SUBSCRIBE_AUDIENCE)
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid subscribe token: {exc}") from None
        check_claim_types(claims)
        channel = claims["channel"]
        if not isinstance(channel, str):
            raise AuthError("invalid subscribe token: channel claim is not a string")
        return channel


def _verified(
    token: str, keys: list[VerifyKey], required: list[str], audience: str | None = None
) -> dict[str, Any]:
    """The claims of ``token`` checked with the first of ``keys`` whose signature matches."""
    error = jwt.InvalidSignatureError("no key to verify it with")
    for key in keys:
        try:
            return _decode_with(token, key, required, audience)
        except jwt.InvalidSignatureError as exc:  # signed with another of the keys, or none
            error = exc
    raise error


def _decode_with(
    token: str, key: VerifyKey, required: list[str], audience: str | None
) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=[key.algorithm],
        audience=audience,
        options={"require": required},
        leeway=_LEEWAY_SECONDS,
    )
    return claims


def connection_token(
    secret: str, user: str, *, channels: tuple[str, ...] = (), ttl: int = 0, now: float
) -> str:
    """An HS256 connection token for ``user``, as an app's backend mints them; ``ttl`` 0: no
    expiry. ``channels`` are the names or ``<namespace>:*`` patterns of private channels."""
    claims: dict[str, Any] = {"sub": user, "iat": int(now)}
    if ttl:
        claims["exp"] = int(now) + ttl
    if channels:
        claims["channels"] = list(channels)
    return jwt.encode(claims, secret, algorithm="HS256")


_NUMERIC_CLAIMS = ("exp", "nbf", "iat")
_LAST_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z
_STRING_CLAIMS = ("sub", "iss", "jti")


def check_claim_types(claims: dict[str, Any]) -> None:
    """Refuse a token whose claims have the wrong JSON types (RFC 7519 section 4.1).

    PyJWT converts some of them with ``int()`` and then returns them unchanged: an ``exp`` of
    ``"1700000000"`` passes its check and would then be no expiry at all. ``aud`` needs no check
    here: connection tokens may not have one, and PyJWT compares subscribe tokens' exactly.
    """
    for name in _NUMERIC_CLAIMS:
        value = claims.get(name)
        if value is not None and not _is_number(value):
            raise AuthError(f"the {name} claim must be a number of seconds since the epoch")
    for name in _STRING_CLAIMS:
        value = claims.get(name)
        if value is not None and not _is_text(value):
            raise AuthError(f"the {name} claim must be a string")
    channels = claims.get("channels", [])
    if not isinstance(channels, list) or not all(_is_text(c) for c in channels):
        raise AuthError("the channels claim must be a list of strings")


def _is_number(value: object) -> bool:
    """A NumericDate up to the end of year 9999 (a larger one overflows float arithmetic)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return abs(value) <= _LAST_NUMERIC_DATE


def _is_text(value: object) -> bool:
    """A string of Unicode characters (a lone surrogate is none, and cannot be stored)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
