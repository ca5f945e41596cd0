"""``pg.rpc`` and ``pg.register`` of pushgate.js in Chromium, against a gateway serving
``tests/rpc_routes.py``: queued before connect, rejected after a failed connect, exceptions
both ways (a Python one in the page, the page's in the gateway's log)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pushgate.cli.processes import free_port
from tests.browser.conftest import NewPage
from tests.stack import Gateway, Stack

LOG_WAIT = 10.0

SCRIPT = """async ({ refusedUrl }) => {
  const { Pushgate, PushgateError } = await import('/static/pushgate.js');
  const out = {};
  const fail = async (promise) => {
    try { await promise; return 'resolved'; } catch (e) {
      return { isError: e instanceof PushgateError, code: e.code ?? null, data: e.data ?? null,
               closeCode: e.closeCode ?? null, message: e.message };
    }
  };
  const within = (promise, what) => Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10000))]);

  const pg = new Pushgate();
  const events = [];
  pg.on('connect', (session) => events.push(['connect', typeof session.client]));
  pg.on('disconnect', ({ code }) => events.push(['disconnect', code]));
  const early = pg.rpc('tally.add', 'queued');   // before the socket is open
  out.stateWhileQueued = pg.state;
  out.early = await early;
  out.second = await pg.rpc('tally.add', 'second');
  out.pythonError = await fail(pg.rpc('fail', [1, 2]));
  out.private = await fail(pg.rpc('tally._wipe'));
  pg.register('double', (n) => n * 2);
  pg.register('later', async (n) => new Promise((resolve) => setTimeout(() => resolve(n), 50)));
  pg.register('explode', () => { throw new TypeError('kaboom from the page'); });
  out.callback = await pg.rpc('ask', { method: 'double', params: 21 });
  out.asyncCallback = await pg.rpc('ask', { method: 'later', params: 'done' });
  out.browserError = await fail(pg.rpc('ask', { method: 'explode' }));
  out.noHandler = await fail(pg.rpc('ask', { method: 'nobody' }));
  out.events = events;
  pg.close();

  const refused = new Pushgate(refusedUrl, { minDelay: 50, maxDelay: 100 });
  const lost = [];
  const twice = new Promise((resolve) => refused.on('disconnect', (event) => {
    lost.push([event.code, event.reconnect]);
    if (lost.length === 2) resolve();
  }));
  out.failedConnect = await fail(refused.rpc('whoami'));
  await within(twice, 'a second attempt');      // it keeps reconnecting
  out.refusedState = refused.state;
  out.lost = lost.slice(0, 2);
  refused.close();
  return out;
}"""


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-rpc") / "gateway.log"


@pytest.fixture(scope="module")
def gateway(stack: Stack, log_path: Path) -> Iterator[Gateway]:
    env = {"PUSHGATE_RPC_ROUTES": "tests.rpc_routes:ROUTES", "PUSHGATE_RPC_TIMEOUT": "5"}
    with log_path.open("wb") as log, stack.extra_gateway(env, log) as started:
        yield started


async def logged(path: Path, needle: str) -> str:
    deadline = time.monotonic() + LOG_WAIT
    while needle not in (text := path.read_text(errors="replace")):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return text


async def test_pg_rpc_queues_rejects_and_carries_exceptions_both_ways(
    gateway: Gateway, new_page: NewPage, log_path: Path
) -> None:
    page = await new_page(gateway.http_url + "/")
    refused_url = f"ws://127.0.0.1:{free_port()}/ws"  # nothing listens there
    out: dict[str, Any] = await page.evaluate(SCRIPT, {"refusedUrl": refused_url})

    assert out["stateWhileQueued"] == "connecting"
    assert out["early"] == ["queued"]  # sent once connected
    assert out["second"] == ["queued", "second"]  # the same instance: state of the connection
    assert out["events"] == [["connect", "string"]]

    python_error = out["pythonError"]
    assert python_error["isError"]
    assert python_error["code"] == -32050
    assert python_error["data"] == {"type": "ValueError", "message": "cannot take [1, 2]"}
    assert "ValueError: cannot take [1, 2]" in python_error["message"]
    assert out["private"]["code"] == -32040

    assert out["callback"] == 42
    assert out["asyncCallback"] == "done"
    browser_error = out["browserError"]
    assert browser_error["code"] == -32050
    assert browser_error["data"] == {
        "type": "ClientCallError",
        "message": "client handler explode failed: TypeError: kaboom from the page",
    }
    assert out["noHandler"]["data"]["message"] == "the client has no handler for nobody"

    failed = out["failedConnect"]
    assert failed["isError"] and failed["code"] is None
    assert failed["closeCode"] == 1006
    assert "connecting failed" in failed["message"]
    assert out["refusedState"] == "connecting"  # rejected the call, not given up
    assert out["lost"] == [[1006, True], [1006, True]]

    text = await logged(log_path, "kaboom from the page")
    assert "client handler explode failed: TypeError: kaboom from the page" in text
    # The page's own stack, as Chromium wrote it: the handler, then pushgate.js answering,
    # on the lines after the warning and before the log's next line.
    after = text.split("client handler explode failed", 1)[1].split("\n", 1)[1]
    stack = re.split(r"^\d\d:\d\d:\d\d ", after, maxsplit=1, flags=re.M)[0]
    assert stack.startswith("TypeError: kaboom from the page\n    at ")
    assert "/static/pushgate.js:" in stack
