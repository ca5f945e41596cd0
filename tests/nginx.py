"""The compose stack's load balancer, nginx with ``deploy/compose/nginx.conf``, run as a real
process in front of loopback gateways: the file's proxy settings are the ones under test, only
its upstream servers, its listen address and its working paths are rewritten."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from pushgate.cli.processes import free_port, spawn, stop

ROOT = Path(__file__).resolve().parents[1]
NGINX_CONF = ROOT / "deploy" / "compose" / "nginx.conf"
UPSTREAM = re.compile(r"^(\s*server )(\S+:\d+)(.*)$", re.MULTILINE)
LISTEN = re.compile(r"^(\s*listen )\d+;", re.MULTILINE)
START_TIMEOUT = 10.0


def upstreams(conf: str) -> list[str]:
    return [match[2] for match in UPSTREAM.finditer(conf)]


def loopback_conf(conf: str, servers: Sequence[str], port: int, workdir: Path) -> str:
    """``conf`` proxying to ``servers`` (host:port), listening on 127.0.0.1:``port``, with every
    file nginx writes kept in ``workdir``."""
    found = upstreams(conf)
    if len(found) != len(servers):
        raise ValueError(f"the file has {len(found)} upstream servers, not {len(servers)}")
    replacements = iter(servers)
    conf = UPSTREAM.sub(lambda m: f"{m[1]}{next(replacements)}{m[3]}", conf)
    conf, listens = LISTEN.subn(rf"\g<1>127.0.0.1:{port};", conf)
    if listens != 1:
        raise ValueError(f"expected one listen directive, found {listens}")
    paths = "".join(
        f"    {kind}_temp_path {workdir / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return conf.replace("http {\n", f"http {{\n    access_log off;\n{paths}", 1)


def find_nginx() -> str:
    found = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if found is None:
        raise RuntimeError("nginx is missing: scripts/test.sh installs Debian's nginx package")
    return found


@contextmanager
def nginx_in_front(servers: Sequence[str]) -> Iterator[str]:
    """A running nginx proxying to ``servers``; yields its base URL (http://127.0.0.1:port)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pushgate-nginx-") as tmp:
        workdir = Path(tmp)
        conf = workdir / "nginx.conf"
        conf.write_text(loopback_conf(NGINX_CONF.read_text(), servers, port, workdir))
        argv = [
            find_nginx(), "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log"),
            "-g", f"daemon off; master_process on; pid {workdir / 'nginx.pid'};",
        ]  # fmt: skip
        process = spawn(argv, quiet=True)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_listening(process, url)
            yield url
        finally:
            stop(process)


def _wait_listening(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}")
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
