"""pushgate.js itself, driven from a page: queueing, errors, giving up, de-duplication."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis.asyncio as aioredis

from pushgate.broker.keys import history_key, meta_key
from pushgate.cli.redis_server import RedisServer
from tests.browser.conftest import NewPage
from tests.stack import Stack

SCRIPT = """async ({ refusing }) => {
  const module = await import('/static/pushgate.js');
  const { Pushgate, PushgateError, Subscription, compareOffsets } = module;
  const out = {};
  const fail = async (promise) => {
    try { await promise; return 'resolved'; } catch (e) {
      return { name: e.name, isError: e instanceof PushgateError, code: e.code ?? null,
               closeCode: e.closeCode ?? null, message: e.message };
    }
  };

  const pg = new Pushgate();
  const early = pg.ping();                       // made before any connection: queued
  out.stateWhileQueued = pg.state;
  out.early = await early;
  out.unknownChannel = await fail(pg.publish('nope:x', 1));
  out.tooBig = await fail(pg.publish('chat:big', 'x'.repeat(70000)));
  out.stateAfterErrors = pg.state;
  pg.close();
  out.afterClose = await fail(pg.ping());

  const closing = new Pushgate();
  const queued = closing.ping();
  closing.close();
  out.queuedThenClosed = await fail(queued);

  const refused = new Pushgate(refusing);
  const disconnects = [];
  refused.on('disconnect', (event) => disconnects.push(event));
  out.refused = await fail(refused.call('ping'));
  out.refusedState = refused.state;
  out.disconnects = disconnects;

  const sub = new Subscription('chat:x', {}, pg);
  const pub = (offset) => ({ channel: 'chat:x', epoch: '1-0', offset, data: offset });
  out.delivered = ['9-5', '10-0', '9-9', '10-0', '10-1'].map((o) => sub.deliver(pub(o)));
  out.ordered = compareOffsets('10-0', '9-5') > 0;
  return out;
}"""


async def test_module_queues_reports_errors_and_gives_up(stack: Stack, new_page: NewPage) -> None:
    home = stack.gateways[0]
    refusing = await asyncio.to_thread(
        stack.start_gateway, {"PUSHGATE_ALLOWED_ORIGINS": "http://app.example"}
    )
    try:
        page = await new_page(home.http_url + "/")
        out: dict[str, Any] = await page.evaluate(SCRIPT, {"refusing": f"{refusing.ws_url}/ws"})
    finally:
        await asyncio.to_thread(stack.stop_gateway, refusing)

    assert out["stateWhileQueued"] == "connecting"
    assert out["early"] == {}
    assert out["unknownChannel"]["isError"]
    assert out["unknownChannel"]["code"] == -32004
    assert out["tooBig"]["code"] is None
    assert "over the 65536 byte limit" in out["tooBig"]["message"]
    assert out["stateAfterErrors"] == "connected"  # call errors leave the socket open
    assert out["afterClose"]["closeCode"] == 1000
    assert out["queuedThenClosed"]["message"] == "the client was closed"
    assert out["refused"]["closeCode"] == 4403
    assert "forbidden" in out["refused"]["message"]
    assert out["refusedState"] == "closed"
    assert [(d["code"], d["reconnect"]) for d in out["disconnects"]] == [(4403, False)]
    assert out["delivered"] == [True, True, False, False, True]
    assert out["ordered"]


RESUME_SCRIPT = """async ({ suffix }) => {
  const { Pushgate } = await import('/static/pushgate.js');
  const within = (promise, what) => Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10000))]);
  const pg = new Pushgate();
  const out = {};
  for (const channel of [`chat:resume-${suffix}`, `tiny:resume-${suffix}`]) {
    const first = await pg.publish(channel, 0);
    for (let n = 1; n <= 5; n++) await pg.publish(channel, n);
    const sub = pg.subscribe(channel, { since: first });
    const got = [];
    const outcome = new Promise((resolve) => {
      sub.on('recovered', () => resolve('recovered'));
      sub.on('unrecovered', () => resolve('unrecovered'));
    });
    sub.on('publication', (pub) => got.push(pub.data));
    const result = await within(outcome, 'the subscribe answer');
    await pg.publish(channel, 6);
    const live = new Promise((resolve) => sub.on('publication', (p) => p.data === 6 && resolve()));
    await within(live, 'the live publication');
    out[channel.split(':')[0]] = { result, got };
  }
  pg.close();
  return out;
}"""


async def test_module_resumes_from_since_or_says_it_cannot(stack: Stack, new_page: NewPage) -> None:
    page = await new_page(stack.gateways[1].http_url + "/")
    out: dict[str, Any] = await page.evaluate(RESUME_SCRIPT, {"suffix": uuid.uuid4().hex[:8]})
    # `chat` keeps 100 publications: everything after `since` is replayed, then live ones.
    assert out["chat"] == {"result": "recovered", "got": [1, 2, 3, 4, 5, 6]}
    # `tiny` keeps 3: the history after `since` is gone, so nothing is replayed, only live ones.
    assert out["tiny"] == {"result": "unrecovered", "got": [6]}


LOST_SCRIPT = """async ({ channel, step }) => {
  const { Pushgate } = await import('/static/pushgate.js');
  const within = (promise, what) => Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10000))]);
  if (step === 'start') {
    const pg = (window.pgLost = new Pushgate());
    const sub = pg.subscribe(channel);
    const out = (window.lostOut = { got: [], outcomes: [] });
    sub.on('publication', (pub) => out.got.push(pub.data));
    sub.on('recovered', () => out.outcomes.push('recovered'));
    sub.on('unrecovered', (result) => out.outcomes.push(['unrecovered', result.epoch]));
    await sub.ready;
    for (let n = 0; n < 3; n++) await pg.publish(channel, n);
    await within(new Promise((resolve) => sub.on('publication', (p) => p.data === 2 && resolve())),
                 'the first publications');
    return out;
  }
  const pg = window.pgLost;
  const out = window.lostOut;
  const sub = pg.subs.get(channel);
  const told = new Promise((resolve) => sub.on('unrecovered', resolve));
  out.newEpoch = (await pg.publish(channel, 3)).epoch;
  await within(told, 'the unrecovered event');
  await pg.publish(channel, 4);
  await within(new Promise((resolve) => sub.on('publication', (p) => p.data === 4 && resolve())),
               'the live publication after it');
  pg.close();
  return out;
}"""


async def test_module_resubscribes_when_the_server_lost_track(
    stack: Stack, redis_server: RedisServer, new_page: NewPage
) -> None:
    """The channel's history is deleted under a live subscription (as when it expires): the next
    publication opens a new epoch, the gateway sends `resubscribe`, and the module resubscribes
    and reports `unrecovered`, then goes on live."""
    channel = f"chat:lost-{uuid.uuid4().hex[:8]}"
    page = await new_page(stack.gateways[0].http_url + "/")
    await page.evaluate(LOST_SCRIPT, {"channel": channel, "step": "start"})
    redis = aioredis.Redis.from_url(redis_server.url)
    await redis.delete(history_key(channel), meta_key(channel))
    await redis.aclose()
    out: dict[str, Any] = await page.evaluate(LOST_SCRIPT, {"channel": channel, "step": "lost"})
    assert out["outcomes"] == [["unrecovered", out["newEpoch"]]]
    assert out["got"] == [0, 1, 2, 4]  # 3 opened the new history: refetch it
