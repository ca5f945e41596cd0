"""The keys a connection token may be signed with, several at once so keys can be rotated.

HS256 secrets (``PUSHGATE_JWT_SECRET``, comma-separated), a PEM public key
(``PUSHGATE_JWT_PUBLIC_KEY``) and a JSON Web Key Set file (``PUSHGATE_JWKS_FILE``) of RSA and EC
public keys, re-read when the file changes. Every key verifies exactly one algorithm, so a
token can never choose how its key is used (an HS256 token "signed" with a public key's PEM
text finds no key).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from pushgate.core.settings import AuthSettings, SettingsError

log = logging.getLogger(__name__)

HMAC_ALGORITHM = "HS256"
_JWKS_ALGORITHMS = ("RS256", "ES256")
_JWKS_TYPES = ("RSA", "EC")
# The JWKS file is stat()ed at most this often, on the path of a token check.
JWKS_CHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """One key and the one algorithm it verifies; ``kid`` names keys of the JWKS file."""

    algorithm: str
    key: Any  # an HMAC secret, or a cryptography public key
    kid: str | None = None


class UnknownKeyIdError(LookupError):
    """A token names a key (``kid``) the gateway does not have."""


class KeyRing:
    """Every configured verification key; a token's ``kid`` picks one, else all of its algorithm
    are candidates."""

    def __init__(self, settings: AuthSettings) -> None:
        static = [VerifyKey(HMAC_ALGORITHM, secret) for secret in settings.jwt_secret]
        if settings.jwt_public_key:
            static.append(pem_key(settings.jwt_public_key))
        self._static = tuple(static)
        self._jwks = JwksFile(settings.jwks_file) if settings.jwks_file else None

    def candidates(self, algorithm: str, kid: str | None) -> list[VerifyKey]:
        """The keys to try, in order, for a token of ``algorithm`` naming ``kid`` (or none)."""
        named = self._jwks.current() if self._jwks is not None else ()
        if kid is not None:
            for key in named:
                if key.kid == kid:
                    return [key] if key.algorithm == algorithm else []
            raise UnknownKeyIdError(kid)
        return [key for key in (*self._static, *named) if key.algorithm == algorithm]


def pem_key(pem: str) -> VerifyKey:
    """``PUSHGATE_JWT_PUBLIC_KEY``: an RSA key verifies RS256, a P-256 key ES256."""
    try:
        public = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise SettingsError(f"PUSHGATE_JWT_PUBLIC_KEY is not a PEM public key: {exc}") from None
    if isinstance(public, rsa.RSAPublicKey):
        return VerifyKey("RS256", public)
    if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        return VerifyKey("ES256", public)
    raise SettingsError("PUSHGATE_JWT_PUBLIC_KEY must be an RSA or a P-256 (ES256) public key")


class JwksFile:
    """The keys of a JWKS file as of its last readable version, re-read once its mtime changes
    (checked at most once per ``JWKS_CHECK_SECONDS``, when a token is checked)."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._clock = clock
        self._checked_at = clock()
        self._stamp = self._current_stamp()
        try:
            self._keys = parse_jwks(_read(path))
        except (OSError, ValueError) as exc:
            raise SettingsError(f"PUSHGATE_JWKS_FILE {path!r}: {exc}") from None

    def current(self) -> tuple[VerifyKey, ...]:
        now = self._clock()
        if now - self._checked_at >= JWKS_CHECK_SECONDS:
            self._checked_at = now
            self._reload_if_changed()
        return self._keys

    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self._path)
        except OSError:
            return None
        # An editor or `mv` replaces the file: a new inode even within the same mtime tick.
        return info.st_mtime_ns, info.st_ino, info.st_size

    def _reload_if_changed(self) -> None:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        try:
            self._keys = parse_jwks(_read(self._path))
        except (OSError, ValueError) as exc:
            # Gone, half-written or broken: keep the keys we have; a new version is read as soon
            # as it appears (the stamp kept is the broken one's, so this is logged once).
            self._stamp = stamp
            log.warning(
                "PUSHGATE_JWKS_FILE %r unreadable, keeping its last keys: %s", self._path, exc
            )
            return
        self._stamp = stamp
        log.info("PUSHGATE_JWKS_FILE %r reloaded: %d keys", self._path, len(self._keys))


def _read(path: str) -> Any:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def parse_jwks(document: Any) -> tuple[VerifyKey, ...]:
    """The RSA (RS256) and EC P-256 (ES256) public keys of a JWKS document; ValueError when it
    is not one, or when two keys share a ``kid``."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('a JWKS is a JSON object with a "keys" list')
    keys = [_jwk(entry) for entry in entries]
    kids = [key.kid for key in keys if key.kid is not None]
    if len(kids) != len(set(kids)):
        raise ValueError("two keys share a kid")
    return tuple(keys)


def _jwk(entry: Any) -> VerifyKey:
    if not isinstance(entry, dict) or entry.get("kty") not in _JWKS_TYPES:
        raise ValueError("every key must be an RSA or EC JSON Web Key")
    kid = entry.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ValueError("a kid must be a string")
    try:
        jwk = jwt.PyJWK(entry)
    except jwt.PyJWTError as exc:
        raise ValueError(f"key {kid!r}: {exc}") from None
    if jwk.algorithm_name not in _JWKS_ALGORITHMS:
        raise ValueError(f"key {kid!r}: algorithm {jwk.algorithm_name} is not accepted")
    key = jwk.key
    # A key set may hold private keys; verifying needs, and keeps, only their public half.
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        key = key.public_key()
    return VerifyKey(jwk.algorithm_name, key, kid)
