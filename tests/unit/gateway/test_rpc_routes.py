"""``PUSHGATE_RPC_ROUTES``: a table is loaded whole or refused with one line saying why, and
names reach only functions and the public methods of classes."""

from __future__ import annotations

import pytest

from gateway.rpc.routes import RouteTable, load_routes
from pushgate.core.rpc import MethodName
from pushgate.core.settings import SettingsError
from tests.unit.gateway.routes_shapes import Box, hello

SHAPES = "tests.unit.gateway.routes_shapes"


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return load_routes(f"{SHAPES}:GOOD")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no-colon", "must be package.module:NAME"),
        (":ROUTES", "must be package.module:NAME"),
        (f"{SHAPES}:", "must be package.module:NAME"),
        ("tests.no_such_module:ROUTES", "cannot import tests.no_such_module"),
        ("tests.unit.gateway.routes_broken:ROUTES", "this module does not import"),
        (f"{SHAPES}:MISSING", "MISSING must be a dict of name -> function or class, found nothing"),
        (f"{SHAPES}:NOT_A_DICT", "found list"),
        (f"{SHAPES}:BAD_NAME", "route name 'has.dot' is not an identifier"),
        (f"{SHAPES}:UNDERSCORE_NAME", "route name '_hidden' is not an identifier"),
        (f"{SHAPES}:NOT_CALLABLE", "route 'answer' is not a function or class"),
    ],
)
def test_a_table_that_cannot_work_is_refused_saying_why(spec: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_routes(spec)
    assert str(caught.value).startswith(f"PUSHGATE_RPC_ROUTES={spec!r}: ")
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_functions_are_reached_by_their_name_alone(table: RouteTable) -> None:
    target = table.resolve(MethodName("hello", None))
    assert target is not None and target.handler is hello and target.member is None
    assert table.resolve(MethodName("hello", "x")) is None


@pytest.mark.parametrize("member", ["open", "shut", "kind"])
def test_public_methods_of_a_class_are_reachable(table: RouteTable, member: str) -> None:
    target = table.resolve(MethodName("box", member))
    assert target is not None and target.handler is Box and target.member == member


@pytest.mark.parametrize("member", [None, "_secret", "__init__", "weight", "label", "nothing"])
def test_nothing_else_of_a_class_is(table: RouteTable, member: str | None) -> None:
    assert table.resolve(MethodName("box", member)) is None


def test_unknown_routes_reach_nothing(table: RouteTable) -> None:
    assert table.resolve(MethodName("nope", None)) is None
    assert len(table) == 2
