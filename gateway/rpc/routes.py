"""``PUSHGATE_RPC_ROUTES=package.module:NAME``: the application's table of in-process routes.

``NAME`` is a dict of route name -> function or class. It is imported when the gateway starts,
and anything wrong with it (the module does not import, the name is missing, a value is not
callable, a name is not an identifier) stops the start with one line saying what.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pushgate.core.rpc import ROUTE_PATTERN, MethodName
from pushgate.core.settings import SettingsError

Handler = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Target:
    """What a method name reaches: a function, or a member of a class route's instance."""

    route: str
    handler: Handler  # the function, or the class
    member: str | None  # None for a function


class RouteTable:
    """Route names to functions and classes; only public members of classes are reachable."""

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        self._routes = dict(routes)

    def __len__(self) -> int:
        return len(self._routes)

    def resolve(self, method: MethodName) -> Target | None:
        """The target ``method`` names, or None when it names nothing reachable."""
        handler = self._routes.get(method.route)
        if handler is None or method.private:
            return None
        if not inspect.isclass(handler):
            return Target(method.route, handler, None) if method.member is None else None
        if method.member is None or not _is_method(handler, method.member):
            return None
        return Target(method.route, handler, method.member)


def _is_method(cls: type, name: str) -> bool:
    # Looked up on the class without running it: a property is not a method, and reading one
    # must not run the app's code.
    attribute = inspect.getattr_static(cls, name, None)
    return isinstance(attribute, staticmethod | classmethod) or inspect.isfunction(attribute)


def load_routes(spec: str) -> RouteTable:
    """Import ``package.module:NAME`` and check its shape; SettingsError says what is wrong."""
    where = f"PUSHGATE_RPC_ROUTES={spec!r}"
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SettingsError(f"{where}: must be package.module:NAME")
    # As uvicorn does for its app: the directory the gateway runs in holds the app's modules.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise SettingsError(f"{where}: cannot import {module_name}: {exc!r}") from exc
    table = getattr(module, attribute, None)
    if not isinstance(table, Mapping):
        found = "nothing" if table is None else type(table).__name__
        raise SettingsError(
            f"{where}: {attribute} must be a dict of name -> function or class, found {found}"
        )
    for name, handler in table.items():
        if not isinstance(name, str) or not ROUTE_PATTERN.fullmatch(name):
            raise SettingsError(f"{where}: route name {name!r} is not an identifier")
        if not callable(handler):
            raise SettingsError(f"{where}: route {name!r} is not a function or class")
    return RouteTable(table)
