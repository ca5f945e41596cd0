"""Signing keys for token tests: JWKs of test keys, JWKS files, signed tokens."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


def jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str | None) -> dict[str, Any]:
    """The public JWK of ``key``, named ``kid``."""
    if isinstance(key, rsa.RSAPrivateKey):
        entry = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        entry = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    if kid is not None:
        entry["kid"] = kid
    return entry


def write_jwks(path: Path, *entries: dict[str, Any]) -> None:
    """Replace the file the way deploy tools do: a new file moved over the old one."""
    staging = path.with_suffix(".new")
    staging.write_text(json.dumps({"keys": list(entries)}))
    os.replace(staging, path)


def signed(key: Any, algorithm: str, kid: str | None, user: str = "u") -> str:
    """A connection token for ``user``, with a ``kid`` header when given one."""
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode({"sub": user}, key, algorithm=algorithm, headers=headers)
