"""Rotating verification keys on real gateways: two secrets at once, then only the new one; a
JWKS file rewritten while the gateway runs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushgate.cli.redis_server import RedisServer
from tests.conftest import redis_db
from tests.rpc import rpc
from tests.stack import Gateway, Stack
from tests.tokens import jwk, signed, write_jwks

OLD, NEW = "old-secret-" + "o" * 32, "new-secret-" + "n" * 32
# The JWKS file is looked at once a second: a change shows well within this.
RELOAD_BOUND_S = 10.0


@pytest.fixture(scope="module")
def rotating(redis_server: RedisServer) -> Iterator[Stack]:
    with Stack(redis_db(redis_server, 4), gateways=0, workers=0, env={}) as running:
        yield running


def accepts(gateway: Gateway, token: str) -> bool:
    """Whether ``token`` authenticates: an unknown job is a 404 for a valid token, else 401."""
    response = httpx.get(
        f"{gateway.http_url}/jobs/{uuid.uuid4().hex}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code in (401, 404), response.text
    return response.status_code == 404


def hs(secret: str) -> str:
    return signed(secret, "HS256", None)


async def test_two_secrets_then_only_the_new_one(rotating: Stack) -> None:
    before = rotating.start_gateway({"PUSHGATE_JWT_SECRET": OLD})
    during = rotating.start_gateway({"PUSHGATE_JWT_SECRET": f"{NEW},{OLD}"})
    assert accepts(during, hs(OLD))
    assert accepts(during, hs(NEW))
    assert not accepts(before, hs(NEW))
    submitted = httpx.post(
        f"{before.http_url}/jobs",
        json={"url": "http://127.0.0.1:9/"},
        headers={"Authorization": f"Bearer {hs(OLD)}"},
        timeout=10,
    ).json()
    job_path = f"/jobs/{submitted['request_id']}"
    subscribe = {"token": submitted["subscribe_token"]}  # signed with OLD
    assert httpx.get(during.http_url + job_path, params=subscribe).status_code == 200
    after = rotating.start_gateway({"PUSHGATE_JWT_SECRET": NEW})  # the old secret rotated out
    for gateway in (before, during):
        rotating.stop_gateway(gateway)
    assert accepts(after, hs(NEW))
    assert not accepts(after, hs(OLD))
    assert httpx.get(after.http_url + job_path, params=subscribe).status_code == 401
    async with rpc(after.ws_url) as socket:
        assert (await socket.call("connect", {"token": hs(OLD)}))["error"]["code"] == -32001
        code, _ = await socket.closed()
        assert code == 4401
    rotating.stop_gateway(after)


def eventually(check: Callable[[], bool], what: str) -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < RELOAD_BOUND_S, f"not {what} after {RELOAD_BOUND_S} s"
        time.sleep(0.1)
    print(f"{what} after {time.monotonic() - started:.2f} s")


async def test_a_rewritten_jwks_file_applies_without_a_restart(
    rotating: Stack, tmp_path: Path
) -> None:
    key_a = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_b = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "jwks.json"
    write_jwks(path, jwk(key_a, "a"))
    gateway = rotating.start_gateway(
        {"PUSHGATE_JWKS_FILE": str(path), "PUSHGATE_TOKEN_SECRET": OLD}
    )
    token_a, token_b = signed(key_a, "RS256", "a"), signed(key_b, "ES256", "b")
    assert accepts(gateway, token_a)
    assert not accepts(gateway, token_b)

    write_jwks(path, jwk(key_a, "a"), jwk(key_b, "b"))
    eventually(lambda: accepts(gateway, token_b), "key b accepted")
    assert accepts(gateway, token_a)

    write_jwks(path, jwk(key_b, "b"))
    eventually(lambda: not accepts(gateway, token_a), "key a refused")
    assert accepts(gateway, token_b)
    assert accepts(gateway, signed(key_b, "ES256", None))  # no kid: every ES256 key is tried
    assert not accepts(gateway, signed(key_b, "ES256", "unknown"))
    async with rpc(gateway.ws_url) as socket:
        refused = await socket.call("connect", {"token": signed(key_a, "RS256", "gone")})
        assert "unknown key id" in refused["error"]["message"]
        code, _ = await socket.closed()
        assert code == 4401
    rotating.stop_gateway(gateway)


def test_a_gateway_without_its_jwks_file_does_not_start(rotating: Stack, tmp_path: Path) -> None:
    env = {"PUSHGATE_JWKS_FILE": str(tmp_path / "absent.json"), "PUSHGATE_TOKEN_SECRET": OLD}
    with pytest.raises(RuntimeError, match="exited"):
        rotating.start_gateway(env)
