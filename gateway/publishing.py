"""Publishing as the server does: the publish API, and handlers of the app's ``rpc`` routes."""

from __future__ import annotations

from typing import Any

from gateway.channel_access import namespace_of
from gateway.services import Services
from pushgate.broker.store import HistoryPolicy
from pushgate.core.channels import JOB_NAMESPACE, Channel, parse_channel
from pushgate.core.errors import ErrorKind, PushgateError


def server_policy(svc: Services, channel: Channel) -> HistoryPolicy:
    """The history kept for a channel the server publishes on: any configured namespace, job
    channels excepted (only workers write those)."""
    namespace = namespace_of(svc, channel)
    if namespace.name == JOB_NAMESPACE:
        raise PushgateError(ErrorKind.PERMISSION_DENIED, "job channels are written by workers only")
    return HistoryPolicy(namespace.history_size, namespace.history_ttl)


async def publish_as_server(svc: Services, name: str, data: Any) -> dict[str, str]:
    """Publish ``data`` on channel ``name``; returns ``{"offset", "epoch"}``."""
    channel = parse_channel(name)
    offset, epoch = await svc.backend.publish(channel.full, data, server_policy(svc, channel))
    return {"offset": offset, "epoch": epoch}
