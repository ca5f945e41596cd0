"""Every message and error path of the pure protocol module, without sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pushgate.core.channels import Channel, Identity
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.protocol import (
    ConnectParams,
    HistoryParams,
    PingParams,
    Position,
    PublishParams,
    Request,
    RequestError,
    Session,
    SubmitParams,
    SubscribeParams,
    UnsubscribeParams,
    encode_error,
    encode_result,
    parse_params,
    parse_request,
)


def frame(method: str, params: Any = None, request_id: Any = 1) -> str:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if request_id is not None:
        message["id"] = request_id
    if params is not None:
        message["params"] = params
    return json.dumps(message)


def request_of(text: str | bytes) -> Request:
    parsed = parse_request(text)
    assert isinstance(parsed, Request), parsed
    return parsed


def params_of(method: str, params: Any = None) -> object:
    return parse_params(request_of(frame(method, params)))


def rpc_error(method: str, params: Any = None) -> PushgateError:
    with pytest.raises(PushgateError) as caught:
        params_of(method, params)
    return caught.value


# Requests


def test_parses_request_with_int_or_string_id() -> None:
    assert parse_request(frame("ping", request_id=7)) == Request(7, "ping", {})
    assert parse_request(frame("ping", {}, request_id="a")) == Request("a", "ping", {})


def test_request_without_id_is_a_notification() -> None:
    assert parse_request(frame("ping", request_id=None)).id is None


def test_bytes_frames_are_parsed_as_utf8() -> None:
    assert request_of(frame("ping").encode()).method == "ping"


@pytest.mark.parametrize("text", ["not json", "{", "", b"\xff\xfe"])
def test_parse_error(text: str | bytes) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(text)
    assert caught.value.kind is ErrorKind.PARSE_ERROR
    assert caught.value.request_id is None


@pytest.mark.parametrize(
    "text",
    [
        '{"jsonrpc":"2.0","id":' + "1" * 5000 + ',"method":"ping"}',
        '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":' + "[" * 3000 + "]" * 3000 + "}}",
        '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":' + "[" * 64 + "]" * 64 + "}}",
    ],
)
def test_frames_too_deep_or_with_huge_integers_are_parse_errors(text: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(text)
    assert caught.value.kind is ErrorKind.PARSE_ERROR
    assert caught.value.request_id is None


@pytest.mark.parametrize(
    ("text", "request_id"),
    [
        ('{"jsonrpc":"2.0","id":7,"method":"publish","params":{"data":NaN}}', 7),
        ('{"jsonrpc":"2.0","id":"x","method":"publish","params":{"data":[1e400]}}', "x"),
        ('{"jsonrpc":"2.0","id":8,"method":"submit","params":{"url":"http://a/\\ud800"}}', 8),
        ('{"jsonrpc":"2.0","method":"publish","params":{"data":-Infinity}}', None),
    ],
)
def test_values_strict_parsers_refuse_are_invalid_params_with_the_id(
    text: str, request_id: object
) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(text)
    assert caught.value.kind is ErrorKind.INVALID_JSON_VALUE
    assert caught.value.kind.rpc_code == -32602
    assert caught.value.request_id == request_id


@pytest.mark.parametrize(
    "text",
    [
        '{"jsonrpc":"2.0","id":NaN,"method":"ping"}',  # no id to answer with
        '{"jsonrpc":"1.0","id":3,"method":"ping","params":{"a":NaN}}',  # not a request at all
    ],
)
def test_a_refused_value_in_a_broken_envelope_is_an_invalid_request(text: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(text)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST


@pytest.mark.parametrize(
    ("message", "request_id"),
    [
        ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], None),  # batches are not supported
        ("ping", None),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": [1], "method": "ping"}, None),
        ({"jsonrpc": "1.0", "id": 3, "method": "ping"}, 3),
        ({"id": 3, "method": "ping"}, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": 5}, 3),
        ({"jsonrpc": "2.0", "id": 3}, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": "ping", "params": [1]}, 3),
    ],
)
def test_invalid_request(message: object, request_id: object) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(json.dumps(message))
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert caught.value.request_id == request_id


def test_unknown_method() -> None:
    assert rpc_error("shutdown").kind is ErrorKind.UNKNOWN_METHOD


# Params of each method


def test_connect_params() -> None:
    assert params_of("connect") == ConnectParams(None)
    assert params_of("connect", {"token": "t"}) == ConnectParams("t")
    assert rpc_error("connect", {"token": 5}).data == {"field": "token"}
    assert rpc_error("connect", {"tokn": "t"}).data == {"field": "tokn"}


def test_subscribe_params() -> None:
    assert params_of("subscribe", {"channel": "chat:a"}) == SubscribeParams(
        Channel("chat", "a"), None, None
    )
    since = {"epoch": "10-0", "offset": "12-3"}
    parsed = params_of("subscribe", {"channel": "job:x", "since": since, "token": "s"})
    assert parsed == SubscribeParams(Channel("job", "x"), Position("10-0", "12-3"), "s")
    empty = params_of("subscribe", {"channel": "chat:a", "since": {"epoch": "", "offset": ""}})
    assert isinstance(empty, SubscribeParams)
    assert empty.since == Position("", "")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"channel": 5},
        {"channel": "nonamespace"},
        {"channel": "Chat:a"},
        {"channel": "chat:"},
        {"channel": "chat:a b"},
        {"channel": "chat:" + "x" * 129},
        {"channel": "chat:a", "since": "10-0"},
        {"channel": "chat:a", "since": {"epoch": "10-0"}},
        {"channel": "chat:a", "since": {"epoch": "", "offset": "1-0"}},
        {"channel": "chat:a", "since": {"epoch": "x", "offset": "1-0"}},
        {"channel": "chat:a", "since": {"epoch": "1-0", "offset": "later"}},
        {"channel": "chat:a", "extra": 1},
    ],
)
def test_subscribe_invalid_params(params: dict[str, Any]) -> None:
    error = rpc_error("subscribe", params)
    assert error.kind is ErrorKind.INVALID_PARAMS
    assert error.data is not None
    assert error.data["field"] in ("channel", "since", "extra")


def test_unsubscribe_params() -> None:
    assert params_of("unsubscribe", {"channel": "chat:a"}) == UnsubscribeParams(
        Channel("chat", "a")
    )
    assert rpc_error("unsubscribe", {}).kind is ErrorKind.INVALID_PARAMS


def test_publish_params_take_any_json_data() -> None:
    for data in ({"a": 1}, [1, 2], "text", 0, False, None):
        parsed = params_of("publish", {"channel": "chat:a", "data": data})
        assert parsed == PublishParams(Channel("chat", "a"), data)
    assert rpc_error("publish", {"channel": "chat:a"}).data == {"field": "data"}


def test_submit_params() -> None:
    assert params_of("submit", {"url": "https://a.example/"}) == SubmitParams(
        "https://a.example/", None, False
    )
    full = {"url": "http://a/", "request_id": "r-1", "subscribe": True}
    assert params_of("submit", full) == SubmitParams("http://a/", "r-1", True)
    assert rpc_error("submit", {"url": "ftp://a/"}).data == {"field": "url"}
    assert rpc_error("submit", {}).data == {"field": "url"}
    assert rpc_error("submit", {"url": "http://a/", "request_id": "a b"}).data == {
        "field": "request_id"
    }
    assert rpc_error("submit", {"url": "http://a/", "subscribe": "yes"}).data == {
        "field": "subscribe"
    }


def test_history_params() -> None:
    assert params_of("history", {"channel": "chat:a"}) == HistoryParams(
        Channel("chat", "a"), None, 100
    )
    assert params_of("history", {"channel": "chat:a", "limit": 5}) == HistoryParams(
        Channel("chat", "a"), None, 5
    )
    for limit in (0, 101, -1, True, "5"):
        assert rpc_error("history", {"channel": "chat:a", "limit": limit}).data == {
            "field": "limit"
        }


def test_ping_params() -> None:
    assert params_of("ping") == PingParams()
    assert rpc_error("ping", {"x": 1}).kind is ErrorKind.INVALID_PARAMS


# Encoding


def test_encode_result_and_error() -> None:
    assert json.loads(encode_result(3, {"a": 1})) == {"jsonrpc": "2.0", "id": 3, "result": {"a": 1}}
    error = PushgateError(ErrorKind.INVALID_PARAMS, "bad", {"field": "x"})
    assert json.loads(encode_error("q", error)) == {
        "jsonrpc": "2.0",
        "id": "q",
        "error": {"code": -32602, "message": "bad", "data": {"field": "x"}},
    }
    bare = json.loads(encode_error(None, PushgateError(ErrorKind.PARSE_ERROR, "nope")))
    assert bare == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "nope"}}


# Session rules


def session(auth: bool = True, subscriptions: int = 2, burst: int = 5) -> Session:
    return Session(auth_required=auth, max_subscriptions=subscriptions, rate=1, burst=burst, now=0)


def request(method: str) -> Request:
    return Request(1, method, {})


def test_connect_must_come_first_when_auth_is_on() -> None:
    s = session()
    with pytest.raises(PushgateError) as caught:
        s.admit(request("subscribe"), now=0)
    assert caught.value.kind is ErrorKind.UNAUTHORIZED
    s.admit(request("connect"), now=0)
    s.connect(Identity("u"))
    s.admit(request("subscribe"), now=0)


def test_without_auth_calls_need_no_connect() -> None:
    open_session = session(auth=False)
    open_session.admit(request("publish"), now=0)  # no PushgateError
    assert not open_session.connected
    with pytest.raises(PushgateError) as caught:
        session(auth=True).admit(request("publish"), now=0)
    assert caught.value.kind is ErrorKind.UNAUTHORIZED


def test_connect_only_once() -> None:
    s = session()
    s.connect(Identity("u"))
    with pytest.raises(PushgateError) as caught:
        s.admit(request("connect"), now=0)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST


def test_rate_limit_is_a_token_bucket() -> None:
    s = session(auth=False, burst=3)
    for _ in range(3):
        s.admit(request("ping"), now=0)
    with pytest.raises(PushgateError) as caught:
        s.admit(request("ping"), now=0)
    assert caught.value.kind is ErrorKind.RATE_LIMITED
    s.admit(request("ping"), now=1.0)  # one token back after a second at rate 1
    with pytest.raises(PushgateError):
        s.admit(request("ping"), now=1.0)


def test_subscription_limit_and_duplicates() -> None:
    s = session(subscriptions=2)
    s.check_can_subscribe(Channel("chat", "a"))
    s.subscriptions.update({"chat:a", "chat:b"})
    with pytest.raises(PushgateError) as duplicate:
        s.check_can_subscribe(Channel("chat", "a"))
    assert duplicate.value.kind is ErrorKind.INVALID_PARAMS
    with pytest.raises(PushgateError) as full:
        s.check_can_subscribe(Channel("chat", "c"))
    assert full.value.kind is ErrorKind.LIMIT_EXCEEDED


def test_position_key() -> None:
    assert Position("1-0", "5-2").key == (5, 2)
    assert Position("", "").key is None
