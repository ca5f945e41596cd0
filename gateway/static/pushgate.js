// @ts-check
/**
 * pushgate.js: a dependency-free browser client for the pushgate realtime protocol
 * (docs/protocol.md): JSON-RPC 2.0 over one WebSocket, channel subscriptions that resume where
 * they left off after a reconnect, publish, history and scrape jobs.
 *
 *   import { Pushgate } from '/static/pushgate.js';
 *   const pg = new Pushgate();                      // ws(s)://<this host>/ws
 *   pg.subscribe('chat:lobby').on('publication', (pub) => console.log(pub.offset, pub.data));
 *   await pg.publish('chat:lobby', { text: 'hi' });
 *
 *   await pg.rpc('counter.add', 2);                 // the application's own calls
 *   pg.register('confirm', (params) => window.confirm(params.text));  // the server calls us
 *
 * Calls made before the connection is up are queued and sent once it is; if that connection
 * attempt fails, every queued call is rejected (and the client keeps trying to connect). A call
 * already sent when its connection drops is rejected too (its outcome is unknown).
 * Subscriptions are renewed on every new connection with `since` = the last publication
 * delivered, and publications are de-duplicated by offset. A `resubscribe` notification (the
 * gateway may have missed some of a channel's publications) renews that one subscription the
 * same way, on the same connection. The client gives up, rejecting every waiting call, on a
 * close code after which reconnecting cannot help, or on `close()`.
 */

/** @typedef {{ epoch: string, offset: string }} Position  ("" and "" = before anything) */
/** @typedef {{ channel: string, offset: string, epoch: string, data: any }} Publication */
/** @typedef {{ channel: string, epoch: string, offset: string, recovered?: boolean }} SubscribeResult */
/** @typedef {'idle' | 'connecting' | 'connected' | 'closed'} State */
/** @typedef {{ resolve: (value: any) => void, reject: (error: Error) => void }} Waiter */
/**
 * @typedef {object} Options
 * @property {string | (() => Promise<string>)} [token] a JWT, or a function that fetches a fresh
 *   one for every connection (then a 4401 close after the token expired reconnects)
 * @property {number} [minDelay] first reconnect delay in ms (250), doubled per failed attempt
 * @property {number} [maxDelay] cap of the reconnect delay in ms (15000); delays are jittered
 * @property {number} [connectTimeout] ms to open the socket and get `connect` answered (10000)
 * @property {number} [maxMessageBytes] the server's frame limit (65536): larger calls are refused
 */

/** Close codes after which reconnecting cannot help (docs/protocol.md, "Close codes"). */
export const FINAL_CLOSE_CODES = new Map([
  [1000, 'normal closure'],
  [1002, 'a frame broke the WebSocket protocol'],
  [1003, 'binary frames are not supported'],
  [1007, 'a text frame was not UTF-8'],
  [1009, 'a message was too big'],
  [4400, 'bad request'],
  [4401, 'authentication failed'],
  [4403, "forbidden: this page's origin is not allowed"],
  [4404, 'unknown job'],
]);
// The error table's retryable codes (pushgate/core/errors.py; a test holds them equal):
// unavailable, rate limited, internal error: the subscribe is sent again later.
const TRANSIENT_ERRORS = new Set([-32013, -32029, -32603]);
const UNAUTHORIZED = -32001;
const RPC_UNKNOWN_METHOD = -32040;
const RPC_ERROR = -32050;

/** An Error carrying the JSON-RPC error `code` and `data`, or the WebSocket `closeCode`. */
export class PushgateError extends Error {
  /** @param {string} message @param {{ code?: number, data?: any, closeCode?: number }} [info] */
  constructor(message, { code, data, closeCode } = {}) {
    super(message);
    this.name = 'PushgateError';
    this.code = code; // the JSON-RPC error code, e.g. -32602
    this.data = data;
    this.closeCode = closeCode; // the close code of the connection that was lost or given up
  }
}

/** Orders offsets `<ms>-<seq>` as pairs of integers. @param {string} a @param {string} b */
export function compareOffsets(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am - bm || as - bs;
}

/** A small event emitter; a listener that throws is reported and does not stop the others. */
class Emitter {
  /** @type {Map<string, Set<(...args: any[]) => void>>} */
  listeners = new Map();

  /** @param {string} event @param {(...args: any[]) => void} fn @returns {this} */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event)?.add(fn);
    return this;
  }

  /** @param {string} event @param {(...args: any[]) => void} fn @returns {this} */
  off(event, fn) {
    this.listeners.get(event)?.delete(fn);
    return this;
  }

  /** @param {string} event @param {...any} args */
  emit(event, ...args) {
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      try { fn(...args); } catch (error) { setTimeout(() => { throw error; }); }
    }
  }
}

/**
 * One channel subscription. Events: `subscribed` (SubscribeResult, after every (re)subscribe),
 * `publication` (Publication), `recovered` (a resubscribe with `since` replayed all that was
 * missed), `unrecovered` (the history from our position is gone: refetch your state),
 * `error` (PushgateError: the server refused it, and it has ended), `unsubscribed`.
 * Publications that arrive before the first `publication` listener are held for it.
 */
export class Subscription extends Emitter {
  /** @type {'pending' | 'subscribed' | 'ended'} */
  state = 'pending';
  /** true while `submit` subscribes it on the server: not renewed on a reconnect until then */
  awaitingSubmit = false;
  /** @type {Publication[]} */
  held = [];
  /** @type {Waiter} */
  settle = { resolve: () => {}, reject: () => {} };
  /** @type {Promise<SubscribeResult>} settles with the first subscribe answer */
  ready = new Promise((resolve, reject) => { this.settle = { resolve, reject }; });

  /**
   * @param {string} channel @param {{ since?: Position, token?: string }} opts
   * @param {Pushgate} client
   */
  constructor(channel, opts, client) {
    super();
    this.channel = channel;
    this.client = client;
    /** @type {Position | null} where to resume: after the last publication delivered */
    this.position = opts.since ?? null;
    /** @type {string | undefined} a channel-scoped subscribe token */
    this.token = opts.token;
    this.ready.catch(() => {}); // awaiting it is optional: `error` is emitted too
  }

  /** @param {string} event @param {(...args: any[]) => void} fn @returns {this} */
  on(event, fn) {
    super.on(event, fn);
    if (event === 'publication') for (const pub of this.held.splice(0)) this.emit(event, pub);
    return this;
  }

  /** @returns {Promise<object>} */
  unsubscribe() {
    return this.client.unsubscribe(this.channel);
  }

  /** @param {SubscribeResult} result @param {boolean} resumed whether `since` was sent */
  subscribed(result, resumed) {
    this.state = 'subscribed';
    // After a recovered resume the replay follows this answer: our position stays until then.
    if (!resumed || result.recovered === false) {
      this.position = { epoch: result.epoch, offset: result.offset };
    }
    this.settle.resolve(result);
    this.emit('subscribed', result);
    if (resumed && result.recovered !== undefined) {
      this.emit(result.recovered ? 'recovered' : 'unrecovered', result);
    }
  }

  /** @param {Publication} pub @returns {boolean} false for a duplicate */
  deliver(pub) {
    const last = this.position;
    if (last?.offset && last.epoch === pub.epoch && compareOffsets(pub.offset, last.offset) <= 0) {
      return false;
    }
    this.position = { epoch: pub.epoch, offset: pub.offset };
    if (this.listeners.get('publication')?.size) this.emit('publication', pub);
    else this.held.push(pub);
    return true;
  }

  /** @param {Error | null} error why it ended; null for an unsubscribe */
  end(error) {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.settle.reject(error ?? new PushgateError(`unsubscribed from ${this.channel}`));
    if (error) this.emit('error', error);
    this.emit('unsubscribed');
  }
}

/** 128 random bits in the request-id alphabet [A-Za-z0-9_-]. */
function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The connection. Events: `state` (State), `connect` ({client, user, expires_at, url}),
 * `disconnect` ({code, reason, reconnect, delay?}: `delay` ms until the next attempt),
 * `publication` (Publication, any channel), `closed` (PushgateError: why it gave up).
 */
export class Pushgate extends Emitter {
  /** @type {State} */
  state = 'idle';
  /** @type {string | null} the endpoint of the current or last connection */
  url = null;
  /** @type {WebSocket | null} */
  ws = null;
  /** @type {object | null} the `connect` answer of the current connection */
  session = null;
  /** @type {PushgateError | null} why the client gave up */
  lastError = null;
  nextId = 1;
  attempt = 0; // failed attempts since the last connect
  turn = 0; // position in the url list
  generation = 0; // counts connection attempts, so stale callbacks can tell
  /** @type {Map<number, Waiter>} calls sent, by id */
  pending = new Map();
  /** @type {(Waiter & { method: string, params?: object })[]} calls waiting for a connection */
  queue = [];
  /** @type {Waiter[]} callers of connect() */
  waiters = [];
  /** @type {Map<string, Subscription>} */
  subs = new Map();
  /** @type {ReturnType<typeof setTimeout> | undefined} the pending reconnect */
  timer = undefined;
  /** @type {Map<string, Handler>} what answers the server's calls, by method */
  handlers = new Map();

  /**
   * @param {string | string[] | ((attempt: number) => string)} [url] the endpoint
   *   (ws(s)://<this page's host>/ws), or replicas tried in turn, one more for each new
   *   attempt, or a function of the number of failed attempts
   * @param {Options} [options]
   */
  constructor(url, options = {}) {
    super();
    const page = globalThis.location;
    const here = `${page?.protocol === 'https:' ? 'wss' : 'ws'}://${page?.host}/ws`;
    /** @type {string[] | ((attempt: number) => string)} */
    this.urls = typeof url === 'function' ? url : Array.isArray(url) ? url : [url ?? here];
    const defaults = { minDelay: 250, maxDelay: 15000, connectTimeout: 10000, maxMessageBytes: 65536 };
    this.options = { ...defaults, ...options };
    // Back online: do not wait out the backoff.
    globalThis.addEventListener?.('online', () => { if (this.timer !== undefined) this.open(); });
  }

  /** Connects (again, after giving up); resolves once connected. @returns {Promise<object>} */
  connect() {
    if (this.state === 'connected') return Promise.resolve(this.session ?? {});
    const connected = new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.state === 'idle' || this.state === 'closed') {
      this.attempt = 0;
      this.open();
    }
    return connected;
  }

  /** Closes for good: ends every subscription and rejects every waiting call. */
  close() {
    for (const sub of this.subs.values()) sub.end(null);
    this.subs.clear();
    this.giveUp(new PushgateError('the client was closed', { closeCode: 1000 }));
  }

  /**
   * Calls a method, queued until connected. Rejects with a PushgateError that has `code` for a
   * JSON-RPC error, `closeCode` when the connection was lost or given up.
   * @param {string} method @param {object} [params] @returns {Promise<any>}
   */
  call(method, params) {
    if (this.state === 'connected') return this.request(method, params);
    if (this.state === 'closed') return Promise.reject(this.lastError);
    if (this.state === 'idle') this.connect().catch(() => {});
    return new Promise((resolve, reject) => this.queue.push({ method, params, resolve, reject }));
  }

  /**
   * Subscribes now, or once connected. `since` resumes after that position; `token` is a
   * channel-scoped subscribe token. @param {string} channel
   * @param {{ since?: Position, token?: string }} [opts] @returns {Subscription}
   */
  subscribe(channel, opts = {}) {
    if (this.subs.has(channel)) throw new PushgateError(`already subscribed to ${channel}`);
    const sub = new Subscription(channel, opts, this);
    this.subs.set(channel, sub);
    if (this.state === 'connected') this.sendSubscribe(sub);
    else if (this.state === 'closed') sub.end(this.lastError);
    else if (this.state === 'idle') this.connect().catch(() => {});
    return sub;
  }

  /** @param {string} channel @returns {Promise<object>} */
  async unsubscribe(channel) {
    const sub = this.subs.get(channel);
    if (!sub) return {};
    this.subs.delete(channel);
    sub.end(null);
    if (this.state !== 'connected') return {}; // nothing to undo on the server
    return this.request('unsubscribe', { channel }).catch((error) => {
      if (error.code === undefined) return {}; // the connection is gone, the subscription too
      throw error;
    });
  }

  /** @param {string} channel @param {any} data @returns {Promise<Position>} */
  publish(channel, data) {
    return this.call('publish', { channel, data });
  }

  /**
   * @param {string} channel @param {{ since?: Position, limit?: number }} [opts]
   * @returns {Promise<{channel: string, epoch: string, offset: string,
   *   publications: {offset: string, data: any}[], recovered?: boolean}>}
   */
  history(channel, opts = {}) {
    return this.call('history', { channel, ...opts });
  }

  /** @returns {Promise<object>} */
  ping() {
    return this.call('ping');
  }

  /**
   * Calls the application's `method` (`route` or `route.member`), queued until connected.
   * When its handler raised, rejects with `code` -32050 and `data` {type, message}.
   * @param {string} method @param {any} [params] @returns {Promise<any>}
   */
  rpc(method, params) {
    return this.call('rpc', { method, params });
  }

  /**
   * Answers the server's calls to `method` with `handler(params)` (its result, or its promise's).
   * What it throws goes back as an error with its name, message and stack, which the gateway logs.
   * @param {string} method @param {Handler} handler @returns {this}
   */
  register(method, handler) {
    this.handlers.set(method, handler);
    return this;
  }

  /**
   * Queues a scrape. With `subscribe: true` every event of the job from `queued` on goes to the
   * returned `subscription` (the request id is made here, so the channel is known up front).
   * @param {string} url @param {{ subscribe?: boolean, request_id?: string }} [opts]
   * @returns {Promise<{request_id: string, url: string, status: string, channel: string,
   *   subscribe_token?: string, subscription?: Subscription}>}
   */
  async submit(url, opts = {}) {
    if (!opts.subscribe) return this.call('submit', { url, ...opts });
    const requestId = opts.request_id ?? randomId();
    const channel = `job:${requestId}`;
    if (this.subs.has(channel)) throw new PushgateError(`already subscribed to ${channel}`);
    const sub = new Subscription(channel, { since: { epoch: '', offset: '' } }, this);
    sub.awaitingSubmit = true;
    this.subs.set(channel, sub);
    try {
      const result = await this.call('submit', { url, ...opts, request_id: requestId });
      sub.awaitingSubmit = false;
      sub.token = result.subscribe_token;
      sub.subscribed({ channel, ...(sub.position ?? { epoch: '', offset: '' }) }, true);
      return { ...result, subscription: sub };
    } catch (error) {
      if (this.subs.get(channel) === sub) this.subs.delete(channel);
      sub.end(/** @type {Error} */ (error));
      throw error;
    }
  }

  // ---- internals ----

  /** @param {State} state */
  setState(state) {
    if (this.state !== state) this.emit('state', (this.state = state));
  }

  async open() {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.setState('connecting');
    const generation = ++this.generation;
    const { token, connectTimeout } = this.options;
    /** @type {string | undefined} */
    let tokenValue;
    let failure = '';
    try {
      tokenValue = typeof token === 'function' ? await token() : token;
    } catch (error) {
      failure = `no token: ${error}`;
    }
    if (generation !== this.generation) return; // given up or restarted meanwhile
    if (failure) {
      this.rejectQueued(new PushgateError(`connecting failed (${failure})`, { closeCode: 1006 }));
      this.emit('disconnect', { code: 1006, reason: failure, reconnect: true, delay: this.retryLater() });
      return;
    }
    const urls = this.urls;
    this.url = typeof urls === 'function' ? urls(this.attempt) : urls[this.turn++ % urls.length];
    const ws = (this.ws = new WebSocket(this.url));
    const deadline = setTimeout(() => this.drop(ws, 1006, 'timed out connecting'), connectTimeout);
    ws.onmessage = (event) => this.receive(String(event.data), ws);
    ws.onclose = (event) => this.drop(ws, event.code, event.reason);
    ws.onopen = () => {
      this.request('connect', tokenValue ? { token: tokenValue } : {}).then(
        (session) => {
          clearTimeout(deadline);
          if (ws === this.ws) this.connected(session);
        },
        (error) => {
          clearTimeout(deadline);
          if (ws !== this.ws || error.code === undefined) return; // drop() handles lost sockets
          if (error.code === UNAUTHORIZED) this.giveUp(error);
          else this.drop(ws, 1011, `connect failed: ${error.message}`);
        },
      );
    };
  }

  /** @param {object} session the `connect` answer */
  connected(session) {
    this.attempt = 0;
    this.session = session;
    this.setState('connected');
    for (const sub of this.subs.values()) if (!sub.awaitingSubmit) this.sendSubscribe(sub);
    for (const { method, params, resolve, reject } of this.queue.splice(0)) {
      this.request(method, params).then(resolve, reject);
    }
    for (const waiter of this.waiters.splice(0)) waiter.resolve(session);
    this.emit('connect', { ...session, url: this.url });
  }

  /** @param {Subscription} sub */
  sendSubscribe(sub) {
    const generation = this.generation;
    const since = sub.position;
    /** @type {Record<string, any>} */
    const params = { channel: sub.channel };
    if (since) params.since = since;
    if (sub.token) params.token = sub.token;
    this.request('subscribe', params).then(
      (result) => {
        if (this.subs.get(sub.channel) === sub) sub.subscribed(result, Boolean(since));
      },
      (error) => {
        const current = () => this.generation === generation && this.subs.get(sub.channel) === sub;
        if (!current() || error.code === undefined) return; // renewed on the next connection
        if (TRANSIENT_ERRORS.has(error.code)) {
          setTimeout(() => current() && this.sendSubscribe(sub), this.backoff(2));
          return;
        }
        this.subs.delete(sub.channel);
        sub.end(error);
      },
    );
  }

  /** @param {string} method @param {object} [params] @returns {Promise<any>} */
  request(method, params) {
    const id = this.nextId++;
    const text = JSON.stringify({ jsonrpc: '2.0', id, method, params });  // drops undefined params
    const size = new TextEncoder().encode(text).length;
    const limit = this.options.maxMessageBytes;
    if (size > limit) {
      return Promise.reject(new PushgateError(`${method}: ${size} bytes is over the ${limit} byte limit`));
    }
    if (this.ws?.readyState !== WebSocket.OPEN) {
      return Promise.reject(new PushgateError(`${method}: not connected`, { closeCode: 1006 }));
    }
    this.ws.send(text);
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  /** @param {string} text one frame from the server @param {WebSocket} ws the socket it came by */
  receive(text, ws) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof message.method === 'string' && typeof message.id === 'string') {
      this.answer(message, ws);
      return;
    }
    if (message.method === 'publication') {
      const pub = /** @type {Publication} */ (message.params);
      if (this.subs.get(pub.channel)?.deliver(pub)) this.emit('publication', pub);
      return;
    }
    if (message.method === 'resubscribe') { // the server dropped it: resume from our position
      const sub = this.subs.get(message.params?.channel);
      if (sub?.state === 'subscribed') this.sendSubscribe(sub);
      return;
    }
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    this.pending.delete(message.id);
    if (message.error) {
      const { code, message: text, data } = message.error;
      waiter.reject(new PushgateError(`${text} (${code})`, { code, data }));
    } else {
      waiter.resolve(message.result);
    }
  }

  /**
   * Runs the handler of a server call and answers it on the socket it came by.
   * @param {{ id: string, method: string, params?: any }} call @param {WebSocket} ws
   */
  async answer(call, ws) {
    const handler = this.handlers.get(call.method);
    /** @type {Record<string, any>} */
    const reply = { jsonrpc: '2.0', id: call.id };
    if (!handler) {
      reply.error = { code: RPC_UNKNOWN_METHOD, message: `no handler for '${call.method}' on this client` };
    } else {
      try {
        reply.result = (await handler(call.params)) ?? null;
      } catch (thrown) {
        const error = thrown instanceof Error ? thrown : new Error(String(thrown));
        const data = { type: error.name, message: error.message, stack: error.stack ?? '' };
        reply.error = { code: RPC_ERROR, message: error.message, data };
      }
    }
    let text;
    try {
      text = JSON.stringify(reply);
    } catch (error) {  // a result JSON cannot carry (a BigInt, a cycle)
      const data = { type: 'TypeError', message: String(error), stack: '' };
      text = JSON.stringify({ jsonrpc: '2.0', id: call.id, error: { code: RPC_ERROR, message: data.message, data } });
    }
    if (ws === this.ws && ws.readyState === WebSocket.OPEN) ws.send(text);
  }

  /**
   * Socket `ws` ended, whoever ended it: reconnect, or give up.
   * @param {WebSocket} ws @param {number} code @param {string} reason
   */
  drop(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    ws.onclose = ws.onmessage = ws.onopen = null;
    ws.close();
    const why = `close code ${code}${reason ? `: ${reason}` : ''}`;
    this.failPending(new PushgateError(`connection lost (${why})`, { closeCode: code }));
    // A function token can be asked for a fresh one when the accepted one expired.
    const expired = code === 4401 && typeof this.options.token === 'function' && this.state === 'connected';
    if (FINAL_CLOSE_CODES.has(code) && !expired) {
      this.emit('disconnect', { code, reason, reconnect: false });
      const message = `gave up: ${FINAL_CLOSE_CODES.get(code)} (${why})`;
      this.giveUp(new PushgateError(message, { closeCode: code }));
    } else {
      if (this.state !== 'connected') {  // this attempt failed: so do the calls waiting for it
        this.rejectQueued(new PushgateError(`connecting failed (${why})`, { closeCode: code }));
      }
      this.emit('disconnect', { code, reason, reconnect: true, delay: this.retryLater() });
    }
  }

  /** The connection attempt failed: the calls waiting for it fail too. @param {Error} error */
  rejectQueued(error) {
    for (const { reject } of this.queue.splice(0)) reject(error);
  }

  /** @param {Error} error */
  failPending(error) {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const { reject } of pending) reject(error);
  }

  /** @param {number} attempt @returns {number} ms, exponential in `attempt`, capped, jittered */
  backoff(attempt) {
    const ceiling = Math.min(this.options.maxDelay, this.options.minDelay * 2 ** attempt);
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }

  /** @returns {number} the delay before the next attempt */
  retryLater() {
    this.setState('connecting');
    const delay = this.backoff(this.attempt++);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
    return delay;
  }

  /** @param {PushgateError} error */
  giveUp(error) {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.generation++;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      ws.close(1000);
    }
    this.lastError = error;
    this.session = null;
    this.failPending(error);
    for (const waiter of [...this.queue.splice(0), ...this.waiters.splice(0)]) waiter.reject(error);
    for (const sub of this.subs.values()) if (sub.state === 'pending') sub.settle.reject(error);
    this.setState('closed');
    this.emit('closed', error);
  }
}
