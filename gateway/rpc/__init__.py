"""The application's own calls over ``/ws`` (the ``rpc`` method), and the server's calls to
clients: who serves them (``local`` routes or the ``proxy``), one connection's queue of calls
(``calls``), the context handlers get (``context``), the calls to a client (``client_calls``)."""

from __future__ import annotations

from gateway.rpc.calls import RpcBackend
from gateway.rpc.local import LocalRpc
from gateway.rpc.proxy import RpcProxy
from gateway.rpc.routes import load_routes
from pushgate.core.settings import RpcSettings


def build_backend(settings: RpcSettings) -> RpcBackend | None:
    """What serves ``rpc`` on this gateway (None: nothing, every call is an unknown method).
    Raises SettingsError for a configuration that cannot work, routes that do not load."""
    settings.validate()
    if settings.routes:
        return LocalRpc(load_routes(settings.routes), settings.threads)
    if settings.proxy_url:
        return RpcProxy(settings.proxy_url, settings.proxy_concurrency)
    return None
