// The latency histogram both drivers use: log buckets growing by 1 % from 1 us, serialised as
// [[bucket, count], ...] (bench/stats.py reads them), and the clock they stamp with.
"use strict";

const { performance } = require("node:perf_hooks");

const LAT_BASE_MS = 0.001;
const LOG_GROWTH = Math.log(1.01);
const BUCKETS = 2600; // up to ~30 minutes

// Milliseconds since the epoch, as the publisher stamps them (all processes share the clock).
function now() {
  return performance.timeOrigin + performance.now();
}

class Histogram {
  constructor() {
    this.counts = new Uint32Array(BUCKETS);
    this.max = 0;
    this.n = 0;
  }
  add(ms) {
    if (ms > this.max) this.max = ms;
    this.n++;
    const b = ms <= LAT_BASE_MS ? 0 : Math.floor(Math.log(ms / LAT_BASE_MS) / LOG_GROWTH);
    this.counts[Math.min(b, BUCKETS - 1)]++;
  }
  toJSON() {
    const buckets = [];
    for (let b = 0; b < BUCKETS; b++) if (this.counts[b]) buckets.push([b, this.counts[b]]);
    return { buckets, max: this.max, n: this.n };
  }
}

module.exports = { Histogram, now };
