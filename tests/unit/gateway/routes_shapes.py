"""Route tables of every shape ``PUSHGATE_RPC_ROUTES`` may name, good and bad."""

from __future__ import annotations

from typing import Any


def hello(ctx: object, params: Any) -> str:
    return "hello"


class Box:
    """A class route: public methods, a private one, a property, statics."""

    def __init__(self, ctx: object) -> None:
        self.label = "box"

    def open(self, params: Any) -> str:
        return "open"

    async def shut(self, params: Any) -> str:
        return "shut"

    @staticmethod
    def kind(params: Any) -> str:
        return "static"

    def _secret(self, params: Any) -> str:
        return "secret"

    @property
    def weight(self) -> int:
        raise AssertionError("a property must never run to be resolved")


GOOD = {"hello": hello, "box": Box}
NOT_A_DICT = [hello]
BAD_NAME = {"has.dot": hello}
UNDERSCORE_NAME = {"_hidden": hello}
NOT_CALLABLE = {"answer": 42}
