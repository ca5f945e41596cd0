"""Issue 9's attacker findings, each as it was sent: a precise 4xx or close code, never a 500, a
dropped socket (1006) or a code that says "retry" to a request that can never succeed."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import websockets

from tests.conftest import API_KEY, JWT_SECRET
from tests.integration.test_api_errors import assert_error, assert_still_serving
from tests.raw import exchange, forged_token, request, ws_connect, ws_frame
from tests.rpc import RawRpc, rpc
from tests.stack import Gateway, Stack
from tests.wsclient import read_all

# Offsets outside Redis stream ids (two unsigned 64-bit numbers, and the largest has no successor)
# and digits of other scripts, which int() reads and Redis does not.
BAD_OFFSETS = [
    "99999999999999999999-0",
    "18446744073709551616-0",
    "0-18446744073709551616",
    "18446744073709551615-18446744073709551615",
    "\u0661-\u0660",
]
NOT_JSON_LITERALS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", '"\\ud800"']


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Gateway:
    return stack.gateways[0]


@pytest.fixture(scope="module")
def auth_gateway(auth_stack: Stack) -> Gateway:
    return auth_stack.gateways[0]


@pytest.fixture(scope="module")
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.http_client() as client:
        yield client


@pytest.fixture(scope="module")
def auth_http(auth_gateway: Gateway) -> Iterator[httpx.Client]:
    with auth_gateway.http_client() as client:
        yield client


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + jwt.encode({"sub": user}, JWT_SECRET, algorithm="HS256")}


def room() -> str:
    return f"chat:{uuid.uuid4().hex}"


async def still_answers(client: RawRpc) -> None:
    assert await client.result("ping") == {}


# JSON that is not JSON everywhere


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"[" * 30000 + b"]" * 30000, 400, "malformed_json"),  # was a RecursionError: 500
        (b"[" * 65 + b"]" * 65, 400, "malformed_json"),
        (b'{"url": "http://a.b/", "x": ' + b"[" * 64 + b"]" * 64 + b"}", 400, "malformed_json"),
        (b"1" * 5000, 400, "malformed_json"),  # was int()'s digit limit: 500
        (b'{"url": ' + b"1" * 5000 + b"}", 400, "malformed_json"),
        (b'{"url": "http://a.example/\\ud800"}', 422, "invalid_json_value"),  # was 500
        (b'{"url": "http://a.example/\xed\xa0\x80"}', 400, "malformed_json"),  # was 500
        (b'{"url": "http://a.example/", "\\udfff": 1}', 422, "invalid_json_value"),
        *[(b'{"url": "http://127.0.0.1:9/", "n": %s}' % v.encode(), 422, "invalid_json_value")
          for v in NOT_JSON_LITERALS],
    ],
)  # fmt: skip
def test_post_jobs_refuses_what_is_not_strict_json(
    http: httpx.Client, body: bytes, status: int, code: str
) -> None:
    assert_error(http.post("/jobs", content=body), status, code)
    assert_still_serving(http)


def test_nesting_up_to_the_limit_is_fine(http: httpx.Client) -> None:
    body = b'{"url": "http://127.0.0.1:9/", "x": ' + b"[" * 63 + b"]" * 63 + b"}"
    assert http.post("/jobs", content=body).status_code == 202


@pytest.mark.parametrize("literal", NOT_JSON_LITERALS)
async def test_values_strict_parsers_refuse_are_refused_and_never_relayed(
    gateway: Gateway, http: httpx.Client, literal: str
) -> None:
    """Was: accepted (200 / a result) and relayed as ``"data":NaN``, which browsers cannot read."""
    channel = room()
    async with rpc(gateway.ws_url) as subscriber, rpc(gateway.ws_url) as publisher:
        await subscriber.result("subscribe", {"channel": channel})
        body = '{"data": ' + literal + "}"
        response = http.post(f"/channels/{channel}/publications", content=body)
        assert_error(response, 422, "invalid_json_value")
        frame = '{"jsonrpc":"2.0","id":7,"method":"publish","params":{"channel":"%s","data":%s}}'
        await publisher.send(frame % (channel, literal))
        answer = await publisher.recv()
        assert answer["id"] == 7 and answer["error"]["code"] == -32602, answer
        await publisher.result("publish", {"channel": channel, "data": "fine"})
        assert [p["data"] for p in await subscriber.publications_until(1)] == ["fine"]


@pytest.mark.parametrize(
    ("frame", "code", "request_id"),
    [
        ('{"jsonrpc":"2.0","id":' + "1" * 5000 + ',"method":"ping"}', -32700, None),
        ('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":' + "[" * 3000 + "]" * 3000 + "}}",
         -32700, None),
        ('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":' + "[" * 64 + "]" * 64 + "}}",
         -32700, None),
        ('{"jsonrpc":"2.0","id":NaN,"method":"ping"}', -32600, None),
        ('{"jsonrpc":"2.0","id":1e400,"method":"ping"}', -32600, None),
        ('{"jsonrpc":"2.0","id":3,"method":"submit","params":{"url":"http://a.example/\\ud800"}}',
         -32602, 3),
        ('{"jsonrpc":"2.0","id":4,"method":"publish","params":{"channel":"chat:a","data":1e400}}',
         -32602, 4),
    ],
)  # fmt: skip
async def test_malformed_frames_are_answered_and_the_socket_stays(
    gateway: Gateway, frame: str, code: int, request_id: int | None
) -> None:
    """Was: the socket dropped with 1006 (the id, the nesting), or -32603 (the surrogate)."""
    async with rpc(gateway.ws_url) as client:
        await client.send(frame)
        answer = await client.recv()
        assert answer["error"]["code"] == code, answer
        assert answer["id"] == request_id
        await still_answers(client)


# Offsets outside the stream id range


@pytest.mark.parametrize("offset", BAD_OFFSETS)
async def test_rpc_offsets_outside_stream_ids_are_invalid_params(
    gateway: Gateway, offset: str
) -> None:
    """Was: -32013 "unavailable; retry" (Redis refused the id), so clients retried for ever."""
    async with rpc(gateway.ws_url) as client:
        for method in ("subscribe", "history"):
            since = {"channel": room(), "since": {"epoch": "1-0", "offset": offset}}
            assert await client.error_code(method, since) == -32602
            epoch = {"channel": room(), "since": {"epoch": offset, "offset": "1-0"}}
            assert await client.error_code(method, epoch) == -32602


async def test_the_largest_offset_with_a_successor_is_fine(gateway: Gateway) -> None:
    since = {"epoch": "1-0", "offset": "18446744073709551615-0"}
    async with rpc(gateway.ws_url) as client:
        result = await client.result("subscribe", {"channel": room(), "since": since})
        assert result["recovered"] is False


@pytest.mark.parametrize("offset", BAD_OFFSETS)
async def test_job_socket_since_outside_stream_ids_closes_4400(
    gateway: Gateway, http: httpx.Client, offset: str
) -> None:
    """Was: 1006 (the Redis error escaped)."""
    job = http.post("/jobs", json={"url": "http://127.0.0.1:9/since"}).json()
    transcript = await read_all(f"{gateway.ws_url}/ws/jobs/{job['request_id']}?since={offset}")
    assert transcript.close_code == 4400
    assert "offset" in transcript.close_reason


@pytest.mark.parametrize("offset", BAD_OFFSETS)
def test_sse_last_event_id_outside_stream_ids_is_422(http: httpx.Client, offset: str) -> None:
    """Was: 200, then the stream cut off."""
    headers = {b"Last-Event-ID": offset.encode()}
    response = http.get("/sse", params={"channel": room()}, headers=headers)
    assert_error(response, 422, "invalid_last_event_id")


# Headers and frames the gateway must not trip over


@pytest.mark.parametrize(
    "header",
    [b"X-API-Key: \xe9", b"Authorization: apikey \xe9", b"X-API-Key: \xc3\xa9\xff"],
)
def test_non_ascii_api_keys_are_401(auth_gateway: Gateway, header: bytes) -> None:
    """Was: 500 (hmac.compare_digest refuses non-ASCII str)."""
    name, _, value = header.partition(b": ")
    path = f"/channels/{room()}/publications".encode()
    answer = exchange(auth_gateway.port, request(b"POST", path, [(name, value)], b'{"data": 1}'))
    assert answer.status == 401
    assert answer.error_code() == "unauthorized"


def test_non_ascii_bearer_token_is_401(auth_gateway: Gateway) -> None:
    headers = [(b"Authorization", b"Bearer \xe9\xff")]
    answer = exchange(auth_gateway.port, request(b"POST", b"/jobs", headers, b"{}"))
    assert (answer.status, answer.error_code()) == (401, "unauthorized")


ORIGINS = [b"http://[", b"http://a]", b"http://[::1", b"http://a:99999", b"\xff\xfe"]


@pytest.mark.parametrize("origin", ORIGINS)
def test_unparsable_origin_is_403_on_sse(gateway: Gateway, origin: bytes) -> None:
    """Was: 500 (urlsplit raised). The open stack allows only its own origin, which is where the
    origin is parsed."""
    headers = [(b"Origin", origin)]
    answer = exchange(gateway.port, request(b"GET", b"/sse?channel=chat:x", headers))
    assert (answer.status, answer.error_code()) == (403, "forbidden")


@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize("path", [b"/ws", b"/ws/jobs/some-job"])
def test_unparsable_origin_closes_4403(gateway: Gateway, origin: bytes, path: bytes) -> None:
    """Was: 1006 on /ws."""
    with ws_connect(gateway.port, path, [(b"Origin", origin)]) as socket:
        assert socket.read_until_close().close_code == 4403


async def test_binary_frames_close_1003(gateway: Gateway) -> None:
    """Was: answered as if they were text. docs/protocol.md: text frames only."""
    async with rpc(gateway.ws_url) as client:
        await client.socket.send(b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
        code, reason = await client.closed()
        assert code == 1003
        assert reason == "binary frames are not supported"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (ws_frame(0x1, b"\xff\xfe"), 1007),
        (ws_frame(0x1, b"{}", masked=False), 1002),
        (ws_frame(0x1, b"{}", rsv=0x40), 1002),
        (ws_frame(0x3, b"x"), 1002),
        (ws_frame(0x0, b"x"), 1002),
    ],
)
def test_frames_that_break_rfc_6455_get_a_close_code(
    gateway: Gateway, frame: bytes, code: int
) -> None:
    with ws_connect(gateway.port) as socket:
        socket.send(frame)
        assert socket.read_until_close().close_code == code


# Token claims of the wrong type


def _claims(now: int) -> list[str]:
    return [
        f'{{"sub": "u", "exp": "{now + 3600}"}}',  # was accepted, with expires_at null
        '{"sub": "u", "nbf": "0"}',
        '{"sub": "u", "iat": "x"}',
        '{"sub": "u", "exp": true}',
        '{"sub": "u", "exp": 1e400}',
        '{"sub": "u", "exp": 1' + "0" * 400 + "}",
        '{"sub": 5}',
        '{"sub": "\\ud800"}',
        '{"sub": "u", "iss": 5}',
        '{"sub": "u", "jti": 5}',
        '{"sub": "u", "aud": "someone"}',
        '{"sub": "u", "channels": "chat:*"}',
        '{"sub": "u", "channels": [1]}',
    ]


@pytest.mark.parametrize("claims", _claims(int(time.time())))
async def test_claims_of_the_wrong_type_are_refused(
    auth_gateway: Gateway, auth_http: httpx.Client, claims: str
) -> None:
    token = forged_token(claims, JWT_SECRET)
    async with rpc(auth_gateway.ws_url) as client:
        assert await client.error_code("connect", {"token": token}) == -32001
        code, _ = await client.closed()
        assert code == 4401
    response = auth_http.post(
        "/jobs", json={"url": "http://127.0.0.1:9/"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(response, 401, "unauthorized")


async def test_a_numeric_exp_still_ends_the_socket(auth_gateway: Gateway) -> None:
    token = forged_token(json.dumps({"sub": "u", "exp": int(time.time()) + 1}), JWT_SECRET)
    async with rpc(auth_gateway.ws_url) as client:
        assert (await client.result("connect", {"token": token}))["expires_at"] is not None
        assert (await client.closed())[0] == 4401


# /ws/jobs counts its 4 KiB in bytes


async def test_job_socket_limit_is_in_bytes(bounded_stack: Stack) -> None:
    """Was: 8000 bytes of emoji (2000 characters) kept the socket open. No workers here: the
    job stays queued and its socket open, whatever the timing."""
    gateway = bounded_stack.gateways[0]
    job = httpx.post(f"{gateway.http_url}/jobs", json={"url": "http://127.0.0.1:9/"}).json()
    async with websockets.connect(f"{gateway.ws_url}/ws/jobs/{job['request_id']}") as socket:
        assert json.loads(await socket.recv())["data"]["type"] == "queued"
        await socket.send("x" * 4096)
        await socket.send("\U0001f600" * 1024)  # 4096 bytes too
        await socket.send("\U0001f600" * 2000)
        with pytest.raises(websockets.ConnectionClosed):
            await socket.recv()
        assert socket.close_code == 1009


# Who may learn that a job exists, and who may read a channel


def _answer(response: httpx.Response, request_id: str) -> tuple[int, str]:
    return response.status_code, response.text.replace(request_id, "<id>")


def test_unreadable_and_unknown_jobs_answer_alike(auth_http: httpx.Client) -> None:
    """Was: 401 for an existing job and 404 for an unknown one, without credentials."""
    alices = auth_http.post("/jobs", json={"url": "http://127.0.0.1:9/a"}, headers=bearer("alice"))
    bobs = auth_http.post("/jobs", json={"url": "http://127.0.0.1:9/b"}, headers=bearer("bob"))
    existing, unknown = alices.json()["request_id"], uuid.uuid4().hex
    callers: list[dict[str, Any]] = [
        {},
        {"headers": bearer("bob")},
        {"params": {"token": bobs.json()["subscribe_token"]}},
    ]
    for caller in callers:
        seen = _answer(auth_http.get(f"/jobs/{existing}", **caller), existing)
        assert seen == _answer(auth_http.get(f"/jobs/{unknown}", **caller), unknown)
        assert seen[0] == 404 and "unknown_job" in seen[1]
        sse = {"channel": f"job:{existing}", **caller.get("params", {})}
        streamed = auth_http.get("/sse", params=sse, headers=caller.get("headers"))
        assert_error(streamed, 404, "unknown_channel")


async def test_unreadable_and_unknown_jobs_close_and_error_alike(
    auth_gateway: Gateway, auth_http: httpx.Client
) -> None:
    alices = auth_http.post("/jobs", json={"url": "http://127.0.0.1:9/c"}, headers=bearer("alice"))
    existing, unknown = alices.json()["request_id"], uuid.uuid4().hex
    closes = [
        (await read_all(f"{auth_gateway.ws_url}/ws/jobs/{request_id}")).close_code
        for request_id in (existing, unknown)
    ]
    assert closes == [4401, 4401]  # no token: refused alike, before any lookup
    async with rpc(auth_gateway.ws_url) as bob:
        await bob.result("connect", {"token": jwt.encode({"sub": "bob"}, JWT_SECRET)})
        for method in ("subscribe", "history"):
            codes = [
                await bob.error_code(method, {"channel": f"job:{request_id}"})
                for request_id in (existing, unknown)
            ]
            assert codes == [-32004, -32004]


def test_sse_needs_a_token_for_public_namespaces_with_auth_on(auth_http: httpx.Client) -> None:
    """Was: 200 without any token, while /ws needs connect first."""
    params = {"channel": room()}
    assert_error(auth_http.get("/sse", params=params), 401, "unauthorized")
    forged = {"Authorization": "Bearer " + forged_token('{"sub": "u"}', "not-the-secret")}
    assert_error(auth_http.get("/sse", params=params, headers=forged), 401, "unauthorized")
    with auth_http.stream("GET", "/sse", params=params, headers=bearer("carol")) as response:
        assert response.status_code == 200
        assert next(response.iter_lines()) == "retry: 2000"


def test_publish_api_key_is_still_checked_first(auth_http: httpx.Client) -> None:
    response = auth_http.post(
        f"/channels/{room()}/publications", content=b'{"data": NaN}', headers={"X-API-Key": "no"}
    )
    assert_error(response, 401, "unauthorized")
    response = auth_http.post(
        f"/channels/{room()}/publications", content=b'{"data": NaN}', headers={"X-API-Key": API_KEY}
    )
    assert_error(response, 422, "invalid_json_value")
    assert json.loads(response.text)["error"]["message"] == "request body: NaN is not a JSON value"
