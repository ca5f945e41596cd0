"""Several verification keys at once: HS256 secrets, a PEM key, a JWKS file that changes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushgate.core.auth import Authenticator, AuthError
from pushgate.core.keyring import JWKS_CHECK_SECONDS, JwksFile, parse_jwks, pem_key
from pushgate.core.settings import AuthSettings, Settings, SettingsError
from tests.tokens import jwk, signed, write_jwks
from tests.unit.core.test_auth import forged_hs256, public_pem

OLD, NEW = "o" * 32, "n" * 32
RSA_A = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_B = ec.generate_private_key(ec.SECP256R1())


def test_a_comma_separated_secret_list_accepts_tokens_of_each() -> None:
    settings = Settings.from_env({"PUSHGATE_JWT_SECRET": f"{NEW}, {OLD}"}).auth
    assert settings.jwt_secret == (NEW, OLD)
    auth = Authenticator(settings)
    for secret in (NEW, OLD):
        assert auth.identify(signed(secret, "HS256", None)).user == "u"
    with pytest.raises(AuthError):
        auth.identify(signed("x" * 32, "HS256", None))


def test_subscribe_tokens_are_signed_with_the_first_secret_and_checked_with_any() -> None:
    old_gateway = Authenticator(AuthSettings(jwt_secret=(OLD,)))
    rotating = Authenticator(AuthSettings(jwt_secret=(NEW, OLD)))
    issued = rotating.issue_subscribe_token("job:a", "u")
    assert issued is not None
    jwt.decode(issued, NEW, algorithms=["HS256"], audience="pushgate:subscribe")
    outstanding = old_gateway.issue_subscribe_token("job:b", "u")
    assert outstanding is not None
    assert rotating.subscribe_token_channel(outstanding) == "job:b"
    with pytest.raises(AuthError):  # after the rotation the old secret opens nothing
        Authenticator(AuthSettings(jwt_secret=(NEW,))).subscribe_token_channel(outstanding)
    # With a token secret of its own, only that one signs and opens subscribe tokens.
    own = Authenticator(AuthSettings(jwt_secret=(NEW,), token_secret=OLD))
    assert own.subscribe_token_channel(outstanding) == "job:b"
    with pytest.raises(AuthError):
        own.subscribe_token_channel(issued)


def test_a_kid_names_the_one_key_to_use(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, jwk(RSA_A, "a"), jwk(EC_B, "b"))
    auth = Authenticator(AuthSettings(jwt_secret=(OLD,), jwks_file=str(path)))
    assert auth.identify(signed(RSA_A, "RS256", "a")).user == "u"
    assert auth.identify(signed(EC_B, "ES256", "b")).user == "u"
    assert auth.identify(signed(EC_B, "ES256", None)).user == "u"  # no kid: every ES256 key
    refused = [
        signed(RSA_A, "RS256", "b"),  # kid b is an EC key
        signed(RSA_A, "RS256", "nobody"),  # unknown kid
        signed(OLD, "HS256", "a"),  # secrets have no kid; a kid means a JWKS key
        forged_hs256({"sub": "mallory"}, public_pem(RSA_A)),
        jwt.encode({"sub": "u"}, "", algorithm="none", headers={"kid": "a"}),
        signed(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", "a"),
    ]
    for token in refused:
        with pytest.raises(AuthError):
            auth.identify(token)
    with pytest.raises(AuthError, match="unknown key id"):
        auth.identify(signed(RSA_A, "RS256", "nobody"))


def test_the_jwks_file_is_reread_when_it_changes_at_most_once_a_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, jwk(RSA_A, "a"))
    now = [0.0]
    keys = JwksFile(str(path), clock=lambda: now[0])
    assert [key.kid for key in keys.current()] == ["a"]
    write_jwks(path, jwk(RSA_A, "a"), jwk(EC_B, "b"))
    now[0] += JWKS_CHECK_SECONDS / 2
    assert [key.kid for key in keys.current()] == ["a"]  # not looked at yet
    now[0] += JWKS_CHECK_SECONDS / 2
    assert [key.kid for key in keys.current()] == ["a", "b"]
    path.write_text('{"keys": [')  # half-written: the last good keys stay
    now[0] += JWKS_CHECK_SECONDS
    with caplog.at_level(logging.WARNING, logger="pushgate.core.keyring"):
        assert [key.kid for key in keys.current()] == ["a", "b"]
        now[0] += JWKS_CHECK_SECONDS
        keys.current()
    # Said once, not every second. (Only warnings count: an earlier test may have left the
    # logger at INFO, and then the reload above was recorded too.)
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    path.unlink()  # gone: the same
    now[0] += JWKS_CHECK_SECONDS
    assert [key.kid for key in keys.current()] == ["a", "b"]
    write_jwks(path, jwk(EC_B, "b"))
    now[0] += JWKS_CHECK_SECONDS
    assert [key.kid for key in keys.current()] == ["b"]


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"keys": {}},
        {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]},
        {"keys": [{**jwk(RSA_A, "a"), "kid": 7}]},
        {"keys": [jwk(RSA_A, "a"), jwk(EC_B, "a")]},
        {"keys": [jwk(ec.generate_private_key(ec.SECP384R1()), "p384")]},
        {"keys": [{"kty": "RSA", "kid": "broken"}]},
    ],
)
def test_bad_key_sets_are_refused(document: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case fails for its own reason
        parse_jwks(document)


def test_a_missing_or_bad_jwks_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="PUSHGATE_JWKS_FILE"):
        JwksFile(str(tmp_path / "absent.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SettingsError, match="PUSHGATE_JWKS_FILE"):
        Authenticator(AuthSettings(jwks_file=str(tmp_path / "bad.json"), token_secret=OLD))


def test_a_pem_key_verifies_only_its_own_algorithm() -> None:
    assert pem_key(public_pem(RSA_A)).algorithm == "RS256"
    assert pem_key(public_pem(EC_B)).algorithm == "ES256"
    with pytest.raises(SettingsError):
        pem_key(public_pem(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(SettingsError):
        pem_key("not a pem")
    auth = Authenticator(AuthSettings(jwt_public_key=public_pem(RSA_A), token_secret=OLD))
    with pytest.raises(AuthError, match="not accepted"):
        auth.identify(signed(EC_B, "ES256", None))


def test_jwks_alone_needs_a_token_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="PUSHGATE_TOKEN_SECRET"):
        AuthSettings(jwks_file=str(tmp_path / "jwks.json")).validate_gateway()
    AuthSettings(jwks_file=str(tmp_path / "jwks.json"), token_secret=OLD).validate_gateway()
