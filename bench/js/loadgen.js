// The load generator: one Node process holding many WebSocket clients (the `ws` package),
// driven by the Python runner over stdin/stdout, one JSON object per line.
//
// It speaks three protocols, each as thin as the protocol allows, so that every system is
// measured by the same code:
//   pushgate     JSON-RPC 2.0 of docs/protocol.md: `subscribe {channel}`, then `publication`s
//   broadcaster  the peer's `{"subscribe": channel}` / `{"subscribed": channel}`, then raw events
//   socketio     Engine.IO 4 / Socket.IO 5 over a plain WebSocket: `40`, `420["subscribe",ch]`,
//                ack `430[...]`, events `42["pub",data]`, answering pings `2` with `3`
//
// Every publication carries {"p": phase, "s": seq, "t": send time in ms since the epoch}. Each
// client counts what it got per seq of the current phase, so the runner learns the lost and
// duplicated deliveries; the latency (receive time - t) goes into a log histogram whose buckets
// grow by 1 % from 1 us (bench/stats.py reads them).
//
// Requests: {"id", "cmd", ...}; answers: {"id", "ok": true, ...} or {"id", "error": "..."}.
//   connect {url, proto, first, count, channel: {mode: "own"|"shared", prefix, name},
//            concurrency, deflate, timeout_ms}
//   phase   {phase, expect}          reset the delivery counters; expect seqs 0..expect-1
//   stats   {}                       the counters of the current phase
//   close   {}                       close every client
//   quit    {}
"use strict";

const readline = require("node:readline");
const { monitorEventLoopDelay } = require("node:perf_hooks");
const WebSocket = require("ws");

const { Histogram, now } = require("./histogram");


// ---- delivery accounting -------------------------------------------------------------------

const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();

let phase = newPhase(null, 0);

function newPhase(id, expect) {
  return {
    id,
    expect,
    received: 0,
    unique: 0,
    dups: 0,
    stray: 0,
    negative: 0,
    firstRecv: null,
    lastRecv: null,
    hist: new Histogram(),
    closed: 0,
    closeCodes: {},
  };
}

function record(client, data, t) {
  const ph = phase;
  ph.received++;
  if (data === null || typeof data !== "object" || data.p !== ph.id) {
    ph.stray++;
    return;
  }
  const s = data.s;
  if (!(s >= 0 && s < ph.expect) || client.got === null) {
    ph.stray++;
    return;
  }
  if (client.got[s] !== 0) {
    ph.dups++;
    if (client.got[s] < 255) client.got[s]++;
    return;
  }
  client.got[s] = 1;
  ph.unique++;
  let latency = t - data.t;
  if (latency < 0) {
    ph.negative++;
    latency = 0;
  }
  ph.hist.add(latency);
  if (ph.firstRecv === null || t < ph.firstRecv) ph.firstRecv = t;
  if (ph.lastRecv === null || t > ph.lastRecv) ph.lastRecv = t;
}

// ---- clients -------------------------------------------------------------------------------

const clients = new Set();

class Client {
  constructor(index, channel) {
    this.index = index;
    this.channel = channel;
    this.ws = null;
    this.subscribed = false;
    this.got = null;
  }
}

// Each protocol: the URL to open, what to send once open, and how to read a frame.
// `onFrame` returns true once the client is subscribed (during the handshake).
const PROTOCOLS = {
  pushgate: {
    url: (base) => base,
    onOpen(client) {
      client.ws.send(
        JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "subscribe",
          params: { channel: client.channel },
        }),
      );
    },
    onFrame(client, text, t) {
      const msg = JSON.parse(text);
      if (client.subscribed) {
        if (msg.method === "publication") record(client, msg.params.data, t);
        return false;
      }
      if (msg.id === 1) {
        if (msg.error) throw new Error(`subscribe error ${msg.error.code}: ${msg.error.message}`);
        return true;
      }
      return false;
    },
  },
  broadcaster: {
    url: (base) => base,
    onOpen(client) {
      client.ws.send(JSON.stringify({ subscribe: client.channel }));
    },
    onFrame(client, text, t) {
      const msg = JSON.parse(text);
      if (client.subscribed) {
        record(client, msg, t);
        return false;
      }
      return msg.subscribed === client.channel;
    },
  },
  socketio: {
    url: (base) => base,
    onOpen() {},
    onFrame(client, text, t) {
      if (text.startsWith("42")) {
        const event = JSON.parse(text.slice(2));
        if (client.subscribed && event[0] === "pub") record(client, event[1], t);
        return false;
      }
      if (text === "2") {
        client.ws.send("3"); // Engine.IO ping from the server
        return false;
      }
      if (text.startsWith("43")) return !client.subscribed; // the ack of our subscribe
      if (text.startsWith("40")) {
        client.ws.send(`420${JSON.stringify(["subscribe", client.channel])}`);
        return false;
      }
      if (text.startsWith("0")) {
        client.ws.send("40"); // Engine.IO open: join the default namespace
        return false;
      }
      if (text.startsWith("44")) throw new Error(`connect_error ${text.slice(2)}`);
      return false;
    },
  },
};

function handshake(client, proto, url, deflate, timeoutMs) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (reason) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        client.ws.terminate();
      } catch {}
      reject(new Error(reason));
    };
    const timer = setTimeout(() => fail("timeout"), timeoutMs);
    const ws = new WebSocket(proto.url(url), {
      perMessageDeflate: deflate,
      skipUTF8Validation: true,
      handshakeTimeout: timeoutMs,
    });
    client.ws = ws;
    ws.on("open", () => proto.onOpen(client));
    ws.on("message", (data) => {
      const t = now();
      let done = false;
      try {
        done = proto.onFrame(client, data.toString(), t);
      } catch (err) {
        if (!client.subscribed) fail(err.message);
        return;
      }
      if (done && !settled) {
        settled = true;
        clearTimeout(timer);
        client.subscribed = true;
        if (phase.id !== null) client.got = new Uint8Array(phase.expect);
        clients.add(client);
        resolve();
      }
    });
    ws.on("error", (err) => fail(err.message.replace(/\d+\.\d+\.\d+\.\d+:\d+/, "addr")));
    ws.on("close", (code) => {
      if (!settled) {
        fail(`closed ${code} before subscribing`);
      } else if (clients.delete(client)) {
        phase.closed++;
        phase.closeCodes[code] = (phase.closeCodes[code] || 0) + 1;
      }
    });
  });
}

async function connect(req) {
  const proto = PROTOCOLS[req.proto];
  if (!proto) throw new Error(`unknown protocol ${req.proto}`);
  const hist = new Histogram();
  const errors = {};
  let ok = 0;
  let failed = 0;
  let next = 0;
  const began = now();
  let lastDone = began;
  const channelOf = (i) =>
    req.channel.mode === "own" ? `${req.channel.prefix}${req.first + i}` : req.channel.name;
  async function worker() {
    while (next < req.count) {
      const i = next++;
      const client = new Client(req.first + i, channelOf(i));
      const start = now();
      try {
        await handshake(client, proto, req.url, Boolean(req.deflate), req.timeout_ms);
        ok++;
        const t = now();
        hist.add(t - start);
        lastDone = Math.max(lastDone, t);
      } catch (err) {
        failed++;
        errors[err.message] = (errors[err.message] || 0) + 1;
      }
    }
  }
  const workers = [];
  for (let w = 0; w < Math.max(1, req.concurrency); w++) workers.push(worker());
  await Promise.all(workers);
  return { connected: ok, failed, errors, began, last_done: lastDone, hist: hist.toJSON() };
}

function startPhase(req) {
  phase = newPhase(req.phase, req.expect);
  for (const client of clients) client.got = new Uint8Array(req.expect);
  lag.reset();
  return { clients: clients.size };
}

function stats() {
  const ph = phase;
  return {
    clients: clients.size,
    received: ph.received,
    unique: ph.unique,
    dups: ph.dups,
    stray: ph.stray,
    negative: ph.negative,
    first_recv: ph.firstRecv,
    last_recv: ph.lastRecv,
    hist: ph.hist.toJSON(),
    closed: ph.closed,
    close_codes: ph.closeCodes,
    lag_p99_ms: lag.percentile(99) / 1e6,
    lag_max_ms: lag.max / 1e6,
    rss_kb: Math.round(process.memoryUsage().rss / 1024),
  };
}

async function closeAll() {
  const closing = [];
  for (const client of clients) {
    closing.push(
      new Promise((resolve) => {
        client.ws.once("close", resolve);
        client.ws.close(1000);
      }),
    );
  }
  const count = closing.length;
  const timeout = new Promise((resolve) => setTimeout(resolve, 5000));
  await Promise.race([Promise.all(closing), timeout]);
  for (const client of clients) client.ws.terminate();
  clients.clear();
  phase = newPhase(null, 0);
  return { closed: count };
}

const COMMANDS = {
  connect,
  phase: startPhase,
  stats,
  close: closeAll,
  quit: () => {
    setImmediate(() => process.exit(0));
    return {};
  },
};

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  let req;
  try {
    req = JSON.parse(line);
    const handler = COMMANDS[req.cmd];
    if (!handler) throw new Error(`unknown command ${req.cmd}`);
    const answer = await handler(req);
    process.stdout.write(`${JSON.stringify({ id: req.id, ok: true, ...answer })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ id: req ? req.id : null, error: String(err) })}\n`);
  }
});
lines.on("close", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
