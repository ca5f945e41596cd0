"""``PUSHGATE_REDIS_URL`` pointing at Redis Sentinel, and ``PUSHGATE_BROKER_URLS`` naming a Redis
Cluster, read without any I/O.

The form (README, "The queue on Sentinel")::

    redis+sentinel://[[username]:password@]host1[:port1],host2[:port2],...[/<master-name>[/db]]

Each host is a sentinel (port 26379 when left out; IPv6 in brackets); the master name is what
the sentinels monitor (``sentinel monitor <master-name> ...``); ``db`` is the database number
(0 when left out). The password (and username) are the master's and its replicas'; the
sentinels are asked without one. ``rediss+sentinel://`` (TLS) is recognized only to be refused
with a clear problem: TLS to sentinels and to the master they name is not supported.

A Redis Cluster as the broker plane (README, "On Redis Cluster")::

    redis+cluster://[[username]:password@]host1[:port1],host2[:port2],...

Each host is a seed node (any node of the cluster, port 6379 when left out); the slot map is
read from the first that answers. The credentials serve every node. No path, query or TLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

SENTINEL_SCHEME = "redis+sentinel"
TLS_SENTINEL_SCHEME = "rediss+sentinel"
DEFAULT_SENTINEL_PORT = 26379
CLUSTER_SCHEME = "redis+cluster"
DEFAULT_REDIS_PORT = 6379


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """Where the sentinels are, which master to ask them for, and how to log in to it."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterUrl:
    """The seed nodes of a Redis Cluster, and how to log in to every node."""

    seeds: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None

    def node_url(self, host: str, port: int) -> str:
        """A ``redis://`` URL of one node, with the cluster's credentials."""
        user = quote(self.username or "", safe="")
        login = f"{user}@" if user else ""
        if self.password:
            login = f"{user}:{quote(self.password, safe='')}@"
        shown = f"[{host}]" if ":" in host else host
        return f"redis://{login}{shown}:{port}/0"


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster's seed nodes."""
    return url.partition("://")[0].lower() == CLUSTER_SCHEME


def parse_cluster_url(url: str) -> ClusterUrl:
    """The parts of a ``redis+cluster://`` URL; ValueError listing every problem otherwise."""
    parsed, problems = _parse_cluster(url)
    if parsed is None:
        raise ValueError("; ".join(problems))
    return parsed


def cluster_url_problems(url: str) -> list[str]:
    """Every reason ``url`` (a cluster URL) cannot be used; empty when it can."""
    return _parse_cluster(url)[1]


def _parse_cluster(url: str) -> tuple[ClusterUrl | None, list[str]]:
    scheme, _, rest = url.partition("://")
    problems: list[str] = []
    if scheme.lower() != CLUSTER_SCHEME:
        problems.append(f"the scheme is not {CLUSTER_SCHEME}://")
    if "?" in rest or "#" in rest:
        problems.append("query options and fragments are not supported")
    netloc, _, path = rest.partition("/")
    if path.strip("/"):
        problems.append("a cluster URL has no path (a cluster has only db 0)")
    userinfo, _, hosts = netloc.rpartition("@")
    seeds = _hosts(hosts, "seed node", DEFAULT_REDIS_PORT, problems)
    username, password = _credentials(userinfo)
    if problems:
        return None, problems
    return ClusterUrl(seeds, username, password), []


def is_sentinel_url(url: str) -> bool:
    """Whether ``url`` names sentinels (either scheme), rather than one Redis."""
    scheme = url.partition("://")[0].lower()
    return scheme in (SENTINEL_SCHEME, TLS_SENTINEL_SCHEME)


def sentinel_url_problems(url: str) -> list[str]:
    """Every reason ``url`` (a sentinel URL) cannot be used; empty when it can."""
    return _parse(url)[1]


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a ``redis+sentinel://`` URL; ValueError listing every problem otherwise."""
    parsed, problems = _parse(url)
    if parsed is None:
        raise ValueError("; ".join(problems))
    return parsed


def _parse(url: str) -> tuple[SentinelUrl | None, list[str]]:
    scheme, _, rest = url.partition("://")
    problems: list[str] = []
    if scheme.lower() == TLS_SENTINEL_SCHEME:
        problems.append(
            f"{TLS_SENTINEL_SCHEME}:// is not supported (no TLS to sentinels); "
            f"use {SENTINEL_SCHEME}:// on a private network"
        )
    elif scheme.lower() != SENTINEL_SCHEME:
        problems.append(f"the scheme is not {SENTINEL_SCHEME}://")
    if "?" in rest or "#" in rest:
        problems.append("query options and fragments are not supported")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    sentinels = _hosts(hosts, "sentinel", DEFAULT_SENTINEL_PORT, problems)
    master_name, db = _path(path, problems)
    username, password = _credentials(userinfo)
    if problems:
        return None, problems
    return SentinelUrl(sentinels, master_name, db, username, password), []


def _hosts(
    hosts: str, kind: str, default_port: int, problems: list[str]
) -> tuple[tuple[str, int], ...]:
    if not hosts.strip():
        problems.append(f"no {kind} host (host1:{default_port},host2:{default_port},...)")
        return ()
    found = (_address(entry.strip(), kind, default_port, problems) for entry in hosts.split(","))
    return tuple(address for address in found if address is not None)


def _address(
    entry: str, kind: str, default_port: int, problems: list[str]
) -> tuple[str, int] | None:
    if not entry:
        problems.append(f"an empty {kind} address (two commas in a row?)")
        return None
    if entry.startswith("["):  # [IPv6]:port
        host, bracket, port = entry[1:].partition("]")
        port = port.removeprefix(":") if bracket else "?"
    else:
        host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
    if not host:
        problems.append(f"{kind} address {entry!r} has no host")
        return None
    if not port:
        return host, default_port
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        problems.append(f"{kind} address {entry!r}: the port is not a number from 1 to 65535")
        return None
    return host, int(port)


def _path(path: str, problems: list[str]) -> tuple[str, int]:
    parts = path.split("/") if path else []
    name = unquote(parts[0]) if parts else ""
    if not name:
        problems.append("no master name: end the URL with /<master-name> (or /<master-name>/db)")
    if len(parts) > 2:
        problems.append("the path is /<master-name>[/db], with nothing after the db")
    db = parts[1] if len(parts) > 1 else "0"
    if not db.isdigit():
        problems.append(f"the db {db!r} is not a number")
        return name, 0
    return name, int(db)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    username, colon, password = userinfo.partition(":")
    if not colon:  # user@host: a username alone, the way redis:// reads it too
        return unquote(username), None
    return unquote(username) or None, unquote(password)
