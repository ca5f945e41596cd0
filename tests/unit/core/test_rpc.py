"""The pure parts of the application's calls: method names, ``rpc`` params, errors, and the
frames of the server's calls to a client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pushgate.core.errors import ErrorKind, PushgateError, RpcCode
from pushgate.core.protocol import Request, RpcParams, parse_params, parse_request
from pushgate.core.rpc import (
    MAX_CLIENT_MESSAGE,
    MAX_CLIENT_STACK,
    ClientAnswer,
    ClientFailure,
    MethodName,
    encode_server_call,
    error_of,
    parse_method,
    server_call_id,
)


def rpc_params(params: Any) -> object:
    frame = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "rpc", "params": params})
    request = parse_request(frame)
    assert isinstance(request, Request)
    return parse_params(request)


@pytest.mark.parametrize(
    ("text", "route", "member"),
    [("add", "add", None), ("counter.add", "counter", "add"), ("c2.get_all", "c2", "get_all")],
)
def test_method_names(text: str, route: str, member: str | None) -> None:
    assert parse_method(text) == MethodName(route, member)
    assert MethodName(route, member).full == text


@pytest.mark.parametrize("text", ["", "a.b.c", ".a", "a.", "_a", "1a", "a-b", "a b", "x" * 65])
def test_malformed_method_names(text: str) -> None:
    assert parse_method(text) is None


def test_a_member_named_with_an_underscore_is_private() -> None:
    assert MethodName("counter", "_reset").private
    assert not MethodName("counter", "reset").private
    assert not MethodName("counter", None).private


def test_rpc_params_carry_any_json_and_default_to_null() -> None:
    assert rpc_params({"method": "a.b", "params": [1, {"x": None}]}) == RpcParams(
        MethodName("a", "b"), [1, {"x": None}]
    )
    assert rpc_params({"method": "a"}) == RpcParams(MethodName("a", None), None)


@pytest.mark.parametrize(
    ("params", "field"),
    [({}, "method"), ({"method": 5}, "method"), ({"method": "a.b.c"}, "method"),
     ({"method": "a", "extra": 1}, "extra")],
)  # fmt: skip
def test_bad_rpc_params(params: dict[str, Any], field: str) -> None:
    with pytest.raises(PushgateError) as caught:
        rpc_params(params)
    assert caught.value.kind is ErrorKind.INVALID_PARAMS
    assert caught.value.data == {"field": field}


def test_a_handler_error_carries_type_and_message() -> None:
    error = error_of(ValueError("bad number"))
    assert error.kind is ErrorKind.RPC_ERROR
    assert error.message == "ValueError: bad number"
    assert error.data == {"type": "ValueError", "message": "bad number"}
    assert error_of(KeyError()).message == "KeyError"


def test_server_calls_have_string_ids_of_their_own() -> None:
    assert server_call_id(1) == "s1"
    frame = json.loads(encode_server_call("s7", "confirm", {"a": 1}))
    assert frame == {"jsonrpc": "2.0", "id": "s7", "method": "confirm", "params": {"a": 1}}
    with pytest.raises(TypeError):
        encode_server_call("s8", "confirm", object())


def answer(message: dict[str, Any]) -> object:
    return parse_request(json.dumps({"jsonrpc": "2.0", **message}))


def test_a_client_answer_is_not_a_request() -> None:
    assert answer({"id": "s1", "result": None}) == ClientAnswer("s1", None, None)
    assert answer({"id": "s2", "result": [1]}) == ClientAnswer("s2", [1], None)


def test_a_client_error_answer_keeps_its_type_message_and_stack_within_bounds() -> None:
    data = {"type": "TypeError", "message": "m", "stack": "x" * 10_000}
    got = answer({"id": "s1", "error": {"code": -32050, "message": "y" * 5000, "data": data}})
    assert isinstance(got, ClientAnswer)
    assert got.error == ClientFailure(
        -32050, "y" * MAX_CLIENT_MESSAGE, "TypeError", "x" * MAX_CLIENT_STACK
    )


@pytest.mark.parametrize("error", [None, 5, "boom", {"code": "x", "data": [1]}, {}])
def test_a_malformed_error_answer_still_fails_its_call(error: object) -> None:
    got = answer({"id": "s1", "error": error})
    assert isinstance(got, ClientAnswer)
    assert got.error == ClientFailure(
        RpcCode.RPC_ERROR, "the client answered an error", "Error", ""
    )
