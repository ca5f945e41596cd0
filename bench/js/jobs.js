// The jobs driver: submits scrape jobs with `POST /jobs` and follows each on `WS /ws/jobs/{id}`
// until its terminal event, measuring submit-to-result latency (from just before the POST to the
// arrival of the `result` frame). Prints one JSON summary on stdout.
//
// Usage: node jobs.js --gateway http://127.0.0.1:P --url http://127.0.0.1:O/page --count N
//                     (--rate R | --concurrency C) [--timeout-ms 60000]
//   --rate R         open loop: job i is submitted at start + i/R seconds
//   --concurrency C  closed loop: C jobs in flight, the next submitted when one ends
"use strict";

const http = require("node:http");
const WebSocket = require("ws");

const { Histogram, now } = require("./histogram");

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const gateway = new URL(option("--gateway", "http://127.0.0.1:8000"));
const pageUrl = option("--url", "http://127.0.0.1:8080/page");
const count = Number(option("--count", "100"));
const rate = Number(option("--rate", "0"));
const concurrency = Number(option("--concurrency", "0"));
const timeoutMs = Number(option("--timeout-ms", "60000"));
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

const result = {
  submitted: 0,
  ok: 0,
  failed: 0,
  lost: 0,
  errors: {},
  first_submit: null,
  last_result: null,
  latency: new Histogram(), // submit -> result frame
  post: new Histogram(), // submit -> 202 answer
  queued: new Histogram(), // submit -> queued frame
  started: new Histogram(), // submit -> started frame
};

function error(reason) {
  result.errors[reason] = (result.errors[reason] || 0) + 1;
}

function post(body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: gateway.hostname,
        port: gateway.port,
        path: "/jobs",
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function follow(requestId, t0) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(outcome);
      ws.close();
    };
    const url = `ws://${gateway.host}/ws/jobs/${encodeURIComponent(requestId)}`;
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    ws.on("message", (data) => {
      const t = now();
      const event = JSON.parse(data.toString()).data;
      if (event.type === "queued") result.queued.add(t - t0);
      else if (event.type === "started") result.started.add(t - t0);
      else if (event.type === "result") {
        result.latency.add(t - t0);
        result.last_result = Math.max(result.last_result || 0, t);
        finish("ok");
      } else if (event.type === "failed") {
        finish(`failed: ${event.error.code}`);
      }
    });
    ws.on("error", (err) => finish(`ws error: ${err.message}`));
    ws.on("close", (code) => finish(`closed ${code} before the result`));
  });
}

async function job(i) {
  const t0 = now();
  if (result.first_submit === null) result.first_submit = t0;
  result.submitted++;
  let answer;
  try {
    answer = await post(JSON.stringify({ url: `${pageUrl}?job=${i}` }));
  } catch (err) {
    result.failed++;
    error(`post: ${err.message}`);
    return;
  }
  result.post.add(now() - t0);
  if (answer.status !== 202) {
    result.failed++;
    error(`post: HTTP ${answer.status} ${answer.body.slice(0, 120)}`);
    return;
  }
  const outcome = await follow(JSON.parse(answer.body).request_id, t0);
  if (outcome === "ok") result.ok++;
  else {
    if (outcome === "timeout") result.lost++;
    else result.failed++;
    error(outcome);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main() {
  const began = now();
  const running = [];
  if (rate > 0) {
    for (let i = 0; i < count; i++) {
      const wait = began + (i * 1000) / rate - now();
      if (wait > 0) await sleep(wait);
      running.push(job(i));
    }
  } else {
    let next = 0;
    const worker = async () => {
      while (next < count) await job(next++);
    };
    for (let w = 0; w < Math.max(1, concurrency); w++) running.push(worker());
  }
  await Promise.all(running);
  const elapsed = (now() - began) / 1000;
  console.log(JSON.stringify({ ...result, elapsed_s: elapsed }));
  agent.destroy();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
