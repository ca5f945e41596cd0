"""JWT verification of connection tokens, and the gateway's own channel-scoped subscribe tokens.

Connection tokens come from the app's backend (HS256 with a shared secret, or RS256/ES256 with a
public key). Subscribe tokens are minted by the gateway itself, carry the audience
``pushgate:subscribe`` (so one can never pass as a connection token: those must have no
audience) and open exactly one channel.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from pushgate.core.channels import ANONYMOUS, Identity
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.settings import AuthSettings

SUBSCRIBE_AUDIENCE = "pushgate:subscribe"
_PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")
_LEEWAY_SECONDS = 5


class AuthError(PushgateError):
    """A token is missing, malformed, badly signed or expired."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.UNAUTHORIZED, message)


class Authenticator:
    """Verifies connection tokens with the configured keys; signs one-channel subscribe tokens."""

    def __init__(self, settings: AuthSettings) -> None:
        self.enabled = settings.enabled
        self._keys: dict[str, str] = {}
        if settings.jwt_secret:
            self._keys["HS256"] = settings.jwt_secret
        if settings.jwt_public_key:
            self._keys.update(dict.fromkeys(_PUBLIC_KEY_ALGORITHMS, settings.jwt_public_key))
        self._signing_secret = settings.signing_secret
        self._subscribe_ttl = settings.subscribe_token_ttl

    def identify(self, token: str | None) -> Identity:
        """The identity a connection token proves; anonymous whenever auth is off."""
        if not self.enabled:
            return ANONYMOUS
        if token is None:
            raise AuthError("a token is required")
        claims = self._decode(token)
        channels = claims.get("channels", [])
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise AuthError("the channels claim must be a list of strings")
        expires = claims.get("exp")
        return Identity(
            user=claims["sub"],
            channels=tuple(channels),
            expires_at=int(expires) if isinstance(expires, int | float) else None,
        )

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            key = self._keys.get(algorithm) if isinstance(algorithm, str) else None
            if key is None:
                raise AuthError(f"tokens signed with {algorithm!r} are not accepted")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                options={"require": ["sub"]},
                leeway=_LEEWAY_SECONDS,
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise AuthError("the sub claim must be a non-empty string")
        return claims

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
            claims = jwt.decode(
                token,
                self._signing_secret,
                algorithms=["HS256"],
                audience=SUBSCRIBE_AUDIENCE,
                options={"require": ["exp", "channel"]},
                leeway=_LEEWAY_SECONDS,
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid subscribe token: {exc}") from None
        channel = claims["channel"]
        if not isinstance(channel, str):
            raise AuthError("invalid subscribe token: channel claim is not a string")
        return channel


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
