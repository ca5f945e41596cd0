from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushgate.core.auth import Authenticator, AuthError
from pushgate.core.channels import ANONYMOUS
from pushgate.core.settings import AuthSettings, SettingsError

SECRET = "s" * 32


def hs(claims: dict[str, object], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def forged_hs256(claims: dict[str, object], key_text: str) -> str:
    """What an attacker builds by hand (PyJWT refuses to): HS256 keyed with a public key."""

    def part(value: object) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signing_input = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(claims)
    digest = hmac.new(key_text.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(digest).rstrip(b"=")).decode()


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def test_hs256_connection_token() -> None:
    auth = Authenticator(AuthSettings(jwt_secret=(SECRET,)))
    exp = int(time.time()) + 60
    identity = auth.identify(hs({"sub": "alice", "exp": exp, "channels": ["team:*"]}))
    assert identity.user == "alice"
    assert identity.expires_at == exp
    assert identity.channels == ("team:*",)


@pytest.mark.parametrize(
    "token",
    [
        hs({"sub": "alice"}, secret="other" * 8),
        hs({"name": "no sub"}),
        hs({"sub": ""}),
        hs({"sub": 5}),
        hs({"sub": "a", "exp": int(time.time()) - 60}),
        hs({"sub": "a", "channels": "team:*"}),
        hs({"sub": "a", "aud": "pushgate:subscribe"}),
        jwt.encode({"sub": "a"}, "", algorithm="none"),
        "not.a.jwt",
        "",
    ],
)
def test_rejected_connection_tokens(token: str) -> None:
    with pytest.raises(AuthError):
        Authenticator(AuthSettings(jwt_secret=(SECRET,))).identify(token)


def raw_hs256(payload: str, secret: str = SECRET) -> str:
    """A token whose payload is any JSON text: PyJWT refuses to encode claims of wrong types."""

    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = part(b'{"alg":"HS256","typ":"JWT"}') + b"." + part(payload.encode())
    digest = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + part(digest)).decode()


NOW = int(time.time())


@pytest.mark.parametrize(
    "payload",
    [
        f'{{"sub": "a", "exp": "{NOW + 3600}"}}',  # PyJWT int()s it, then hands back the string
        '{"sub": "a", "exp": true}',
        '{"sub": "a", "exp": 1e400}',
        '{"sub": "a", "exp": 1' + "0" * 400 + "}",  # an int, but beyond any date
        '{"sub": "a", "nbf": "0"}',
        '{"sub": "a", "nbf": false}',
        '{"sub": "a", "iat": "0"}',
        '{"sub": "a", "iss": 5}',
        '{"sub": "a", "iss": ["x"]}',
        '{"sub": "a", "jti": 5}',
        '{"sub": "\\ud800"}',
        '{"sub": "a", "channels": ["\\udc00"]}',
        '{"sub": "a", "channels": [1]}',
        '{"sub": "a", "channels": {"team:*": true}}',
    ],
)
def test_claims_of_the_wrong_type_are_refused(payload: str) -> None:
    with pytest.raises(AuthError):
        Authenticator(AuthSettings(jwt_secret=(SECRET,))).identify(raw_hs256(payload))


def test_claims_of_the_right_types_pass() -> None:
    now = int(time.time())
    payload = json.dumps(
        {"sub": "a", "exp": now + 60.5, "nbf": now - 1, "iat": now, "iss": "me", "jti": "j1"}
    )
    identity = Authenticator(AuthSettings(jwt_secret=(SECRET,))).identify(raw_hs256(payload))
    assert identity.expires_at == now + 60


def test_missing_token_is_an_error_only_when_auth_is_on() -> None:
    with pytest.raises(AuthError):
        Authenticator(AuthSettings(jwt_secret=(SECRET,))).identify(None)
    assert Authenticator(AuthSettings(disabled=True)).identify(None) == ANONYMOUS


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
    ],
)
def test_public_key_tokens(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, algorithm: str
) -> None:
    public = public_pem(key)
    auth = Authenticator(AuthSettings(jwt_public_key=public, token_secret=SECRET))
    assert auth.identify(jwt.encode({"sub": "bob"}, key, algorithm=algorithm)).user == "bob"
    # An HS256 token "signed" with the public key text must not pass (algorithm confusion).
    with pytest.raises(AuthError):
        auth.identify(forged_hs256({"sub": "mallory"}, public))


def test_subscribe_tokens_open_one_channel_and_are_not_connection_tokens() -> None:
    auth = Authenticator(AuthSettings(jwt_secret=(SECRET,), subscribe_token_ttl=60))
    token = auth.issue_subscribe_token("job:abc", "alice")
    assert token is not None
    assert auth.subscribe_token_channel(token) == "job:abc"
    with pytest.raises(AuthError):
        auth.identify(token)
    with pytest.raises(AuthError):  # a connection token is no subscribe token
        auth.subscribe_token_channel(hs({"sub": "alice", "channel": "job:abc"}))
    expired = Authenticator(AuthSettings(jwt_secret=(SECRET,), subscribe_token_ttl=0))
    stale = expired.issue_subscribe_token("job:abc", "alice")
    assert stale is not None
    decoded = jwt.decode(
        stale,
        SECRET,
        algorithms=["HS256"],
        audience="pushgate:subscribe",
        options={"verify_exp": False},
    )
    assert decoded["exp"] <= time.time()


def test_no_subscribe_tokens_without_auth() -> None:
    assert Authenticator(AuthSettings(disabled=True)).issue_subscribe_token("job:a", None) is None


def test_gateway_needs_a_key_unless_auth_is_disabled() -> None:
    with pytest.raises(SettingsError, match="PUSHGATE_JWT_SECRET"):
        AuthSettings().validate_gateway()
    with pytest.raises(SettingsError, match="PUSHGATE_TOKEN_SECRET"):
        AuthSettings(jwt_public_key="pem").validate_gateway()
    AuthSettings(disabled=True).validate_gateway()
    AuthSettings(jwt_secret=(SECRET,)).validate_gateway()
