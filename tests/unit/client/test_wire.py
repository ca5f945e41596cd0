"""The client's pure parts: backoff, reconnect policy, ordering, framing, response matching."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from pushgate.client import Position, PushgateClient, RpcError, Subscription
from pushgate.client.wire import (
    ClientClosedError,
    ClientError,
    ConnectionLostError,
    PendingCalls,
    ProtocolViolationError,
    Publication,
    Response,
    ServerCall,
    backoff_delay,
    decode_message,
    encode_answer,
    encode_failure,
    encode_request,
    is_new,
    should_reconnect,
    subscribe_params,
)
from pushgate.core.errors import RpcCode

E1, E2 = "1700000000000-0", "1700000099000-0"


def pub(offset: str, epoch: str = E1, channel: str = "chat:a", data: Any = None) -> Publication:
    return Publication(channel, offset, epoch, data)


# Backoff


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 0.2), (1, 0.4), (3, 1.6), (6, 10.0)])
def test_backoff_ceiling_doubles_then_caps(attempt: int, ceiling: float) -> None:
    assert backoff_delay(attempt, base=0.2, cap=10.0, rand=lambda: 1.0) == pytest.approx(ceiling)
    assert backoff_delay(attempt, base=0.2, cap=10.0, rand=lambda: 0.0) == 0.0


def test_backoff_is_full_jitter_within_the_ceiling() -> None:
    rand = random.Random(7).random
    delays = [backoff_delay(4, base=0.2, cap=10.0, rand=rand) for _ in range(2000)]
    assert all(0.0 <= d <= 3.2 for d in delays)
    # Spread over the whole range, not clustered at the ceiling.
    assert min(delays) < 0.3
    assert max(delays) > 2.9
    assert 1.3 < sum(delays) / len(delays) < 1.9


def test_backoff_stays_finite_after_many_attempts() -> None:
    assert backoff_delay(10_000, base=0.2, cap=10.0, rand=lambda: 1.0) == 10.0


# Reconnect policy (docs/protocol.md, "Close codes")


@pytest.mark.parametrize("code", [1001, 1006, 1011, 1012, 1013, 4408, 4429, None])
def test_reconnectable_close_codes(code: int | None) -> None:
    assert should_reconnect(code, renewable_token=False)


@pytest.mark.parametrize("code", [1000, 1009, 4400, 4403, 4404])
def test_final_close_codes(code: int) -> None:
    assert not should_reconnect(code, renewable_token=True)


def test_auth_failure_reconnects_only_with_a_token_source() -> None:
    assert should_reconnect(4401, renewable_token=True)
    assert not should_reconnect(4401, renewable_token=False)


# Ordering and de-duplication


def test_is_new_within_an_epoch_compares_offsets_as_numbers() -> None:
    position = Position(E1, "1700000000000-9")
    assert is_new(position, pub("1700000000000-10"))
    assert is_new(position, pub("1700000000001-0"))
    assert not is_new(position, pub("1700000000000-9"))
    assert not is_new(position, pub("1700000000000-2"))


def test_is_new_accepts_anything_from_nowhere_or_another_epoch() -> None:
    assert is_new(None, pub("1-0"))
    assert is_new(Position("", ""), pub("1-0"))
    assert is_new(Position(E1, "1700000099000-5"), pub("1700000099000-1", epoch=E2))


async def drain(subscription: Subscription) -> list[str]:
    subscription._end(None)
    return [p.offset async for p in subscription]


async def test_subscription_yields_each_offset_once_in_order() -> None:
    subscription = Subscription("chat:a", Position(E1, "5-0"))
    for offset in ["4-0", "5-0", "6-0", "6-0", "7-0", "6-0", "8-0"]:
        subscription._offer(pub(offset))
    assert await drain(subscription) == ["6-0", "7-0", "8-0"]
    assert subscription.position == Position(E1, "8-0")


async def test_subscription_follows_a_new_epoch() -> None:
    subscription = Subscription("chat:a", Position(E1, "9-0"))
    subscription._offer(pub("10-0"))
    subscription._offer(pub("2-0", epoch=E2))
    subscription._offer(pub("2-0", epoch=E2))
    assert await drain(subscription) == ["10-0", "2-0"]


async def test_subscription_end_repeats_and_carries_the_error() -> None:
    subscription = Subscription("chat:a", None)
    subscription._offer(pub("1-0"))
    subscription._end(ClientClosedError("gone", 4404))
    assert (await anext(subscription)).offset == "1-0"
    for _ in range(2):
        with pytest.raises(ClientClosedError):
            await anext(subscription)


def test_first_subscribe_answer_sets_the_resume_position() -> None:
    subscription = Subscription("chat:a", None)
    subscription._confirm({"channel": "chat:a", "epoch": E1, "offset": "7-0"})
    assert subscription.position == Position(E1, "7-0")
    assert subscription.recovered is None


def test_recovered_resubscription_keeps_the_position_for_the_replay() -> None:
    subscription = Subscription("chat:a", Position(E1, "3-0"))
    subscription._confirm({"channel": "chat:a", "epoch": E1, "offset": "9-0", "recovered": True})
    assert subscription.position == Position(E1, "3-0")
    assert subscription.recovered is True


def test_unrecovered_resubscription_resumes_from_the_latest_offset() -> None:
    subscription = Subscription("chat:a", Position(E1, "3-0"))
    subscription._confirm({"channel": "chat:a", "epoch": E2, "offset": "9-0", "recovered": False})
    assert subscription.position == Position(E2, "9-0")
    assert subscription.recovered is False


def test_subscribe_token_from_submit_is_kept_for_resubscribing() -> None:
    subscription = Subscription("job:r1", Position("", ""))
    subscription._confirm({"request_id": "r1", "channel": "job:r1", "subscribe_token": "t"})
    assert subscription.position == Position("", "")
    assert subscription._params() == {
        "channel": "job:r1",
        "since": {"epoch": "", "offset": ""},
        "token": "t",
    }


# Framing


def test_encode_request() -> None:
    assert json.loads(encode_request(3, "publish", {"channel": "chat:a", "data": [1]})) == {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "publish",
        "params": {"channel": "chat:a", "data": [1]},
    }
    assert "params" not in json.loads(encode_request(4, "ping", None))


def test_subscribe_params() -> None:
    assert subscribe_params("chat:a", None) == {"channel": "chat:a"}
    assert subscribe_params("chat:a", Position(E1, "2-0"), "tok") == {
        "channel": "chat:a",
        "since": {"epoch": E1, "offset": "2-0"},
        "token": "tok",
    }


def test_decode_result_and_error() -> None:
    assert decode_message('{"jsonrpc":"2.0","id":1,"result":{}}') == Response(1, {}, None)
    response = decode_message(
        '{"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"bad","data":{"field":"url"}}}'
    )
    assert isinstance(response, Response) and response.error is not None
    assert response.error.code == RpcCode.INVALID_PARAMS
    assert (response.error.message, response.error.data) == ("bad", {"field": "url"})


def test_decode_keeps_an_unknown_error_code_as_an_error() -> None:
    response = decode_message('{"jsonrpc":"2.0","id":2,"error":{"code":-32099,"message":"new"}}')
    assert isinstance(response, Response) and response.error is not None
    assert response.error.code == RpcCode.INTERNAL_ERROR
    assert response.error.data == {"code": -32099}


def test_decode_publication_keeps_any_json_data() -> None:
    frame = (
        '{"jsonrpc":"2.0","method":"publication",'
        f'"params":{{"channel":"chat:a","offset":"5-1","epoch":"{E1}","data":[1,"x"]}}}}'
    )
    assert decode_message(frame) == Publication("chat:a", "5-1", E1, [1, "x"])


def test_decode_ignores_unknown_notifications() -> None:
    assert decode_message('{"jsonrpc":"2.0","method":"later","params":{}}') is None


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[]",
        '{"id":1,"result":{}}',
        '{"jsonrpc":"2.0","id":1}',
        '{"jsonrpc":"2.0","id":1,"error":"bad"}',
        '{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}',
        '{"jsonrpc":"2.0","method":"publication","params":{"channel":"c:a","offset":"x",'
        '"epoch":"","data":1}}',
        '{"jsonrpc":"2.0","method":"publication","params":{"channel":"c:a","offset":"1-0"}}',
    ],
)
def test_decode_rejects_what_is_not_the_protocol(frame: str) -> None:
    with pytest.raises(ProtocolViolationError):
        decode_message(frame)


# Response matching


async def test_responses_complete_their_own_calls_in_any_order() -> None:
    calls = PendingCalls()
    (first, a), (second, b) = calls.open(), calls.open()
    assert first != second
    assert calls.settle(Response(second, "B", None))
    assert calls.settle(Response(first, "A", None))
    assert (await a, await b) == ("A", "B")
    assert len(calls) == 0


async def test_error_answers_raise_and_strangers_are_refused() -> None:
    calls = PendingCalls()
    request_id, future = calls.open()
    assert not calls.settle(Response(request_id + 100, {}, None))
    assert not calls.settle(Response("text-id", {}, None))
    calls.settle(Response(request_id, None, RpcError(RpcCode.CONFLICT, "taken")))
    with pytest.raises(RpcError) as caught:
        await future
    assert caught.value.code == RpcCode.CONFLICT


async def test_result_hook_runs_before_the_caller_resumes() -> None:
    calls = PendingCalls()
    seen: list[Any] = []
    request_id, future = calls.open(seen.append)
    calls.settle(Response(request_id, {"epoch": E1}, None))
    assert seen == [{"epoch": E1}]
    assert await future == {"epoch": E1}


async def test_a_malformed_result_fails_only_its_call() -> None:
    calls = PendingCalls()

    def reject(_result: Any) -> None:
        raise ProtocolViolationError("not an object")

    request_id, future = calls.open(reject)
    assert calls.settle(Response(request_id, [], None))
    with pytest.raises(ProtocolViolationError):
        await future


async def test_fail_all_fails_waiting_calls_and_skips_abandoned_ones() -> None:
    calls = PendingCalls()
    (_, waiting), (abandoned_id, abandoned) = calls.open(), calls.open()
    abandoned.cancel()
    calls.fail_all(ConnectionLostError(1012))
    with pytest.raises(ConnectionLostError) as caught:
        await waiting
    assert caught.value.close_code == 1012
    assert not calls.settle(Response(abandoned_id, {}, None))


# The client without a socket


async def test_calls_before_connect_fail_clearly() -> None:
    client = PushgateClient("ws://127.0.0.1:9/ws")
    with pytest.raises(ClientError, match="connect"):
        await client.call("ping")


async def test_calls_after_close_fail_with_client_closed() -> None:
    client = PushgateClient("ws://127.0.0.1:9/ws")
    await client.close()
    with pytest.raises(ClientClosedError):
        await asyncio.wait_for(client.publish("chat:a", 1), 5)


# Calls from the server


def test_a_server_call_is_decoded_as_one() -> None:
    frame = json.dumps({"jsonrpc": "2.0", "id": "s3", "method": "confirm", "params": {"a": 1}})
    assert decode_message(frame) == ServerCall("s3", "confirm", {"a": 1})


@pytest.mark.parametrize("call_id", [3, ["s1"], True])
def test_a_server_call_needs_a_string_id(call_id: object) -> None:
    with pytest.raises(ProtocolViolationError):
        decode_message(json.dumps({"jsonrpc": "2.0", "id": call_id, "method": "confirm"}))


def test_answers_to_server_calls() -> None:
    assert json.loads(encode_answer("s1", [1])) == {"jsonrpc": "2.0", "id": "s1", "result": [1]}
    try:
        raise ValueError("no thanks")
    except ValueError as exc:
        failed = json.loads(encode_failure("s2", exc, "confirm"))
    error = failed["error"]
    assert (failed["id"], error["code"], error["message"]) == ("s2", -32050, "no thanks")
    assert error["data"]["type"] == "ValueError"
    assert error["data"]["message"] == "no thanks"
    assert "Traceback" in error["data"]["stack"] and "no thanks" in error["data"]["stack"]
    missing = json.loads(encode_failure("s3", None, "confirm"))["error"]
    assert missing["code"] == -32040
    assert "confirm" in missing["message"]
