// @ts-check
/** /admin: this gateway's GET /status, refreshed every two seconds with the API key given. */
import { byId, el } from './ui.js';

const REFRESH_MS = 2000;
const KEY = 'pushgate-admin-key'; // kept for this tab only

/** The rows shown, in order: label and how to read it from the status. */
const ROWS = [
  ['version', (s) => s.version],
  ['uptime', (s) => `${Math.round(s.uptime_seconds)} s`],
  ['draining', (s) => (s.draining ? 'yes' : 'no')],
  ['connections', (s) => `${s.connections.open} (of them /ws: ${s.connections.ws}; limit ${s.connection_limit})`],
  ['channels', (s) => String(s.channels)],
  ['subscriptions', (s) => String(s.subscriptions)],
  ['redis', (s) => `${s.redis.address} ${s.redis.ok ? 'ok' : `down (${s.redis.error})`}, pub/sub ${s.redis.pubsub ? 'up' : 'down'}`],
  ['queue depth', (s) => (s.redis.ok ? String(s.redis.queue_depth) : '?')],
  ['oldest queued', (s) => (s.redis.oldest_queued_seconds == null ? '-' : `${s.redis.oldest_queued_seconds.toFixed(1)} s`)],
  ['broker shards', (s) => s.shards.map((/** @type {any} */ d) => `${d.index} ${d.address} ${d.up ? 'up' : `DOWN (${d.error})`}`).join('; ')],
];

const badge = byId('status');
const body = /** @type {HTMLTableSectionElement} */ (byId('numbers').querySelector('tbody'));
/** @type {number | undefined} */
let timer;

/** @param {string} state @param {string} text */
function show(state, text) {
  badge.dataset.state = state;
  badge.textContent = text;
}

/** @param {any} status */
function render(status) {
  body.replaceChildren(
    ...ROWS.map(([label, read]) =>
      el('tr', { 'data-row': String(label) }, el('th', {}, String(label)), el('td', {}, read(status))),
    ),
  );
}

async function refresh() {
  const key = sessionStorage.getItem(KEY) ?? '';
  try {
    const response = await fetch('/status', { headers: key ? { 'X-API-Key': key } : {} });
    const answer = await response.json();
    if (!response.ok) {
      show('closed', `${response.status} ${answer.error?.code ?? ''}`);
      return;
    }
    render(answer);
    show('connected', `updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    show('disconnected', `gateway unreachable: ${error}`);
  } finally {
    timer = window.setTimeout(refresh, REFRESH_MS);
  }
}

byId('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, /** @type {HTMLInputElement} */ (byId('api-key')).value);
  window.clearTimeout(timer);
  refresh();
});
if (sessionStorage.getItem(KEY) !== null) refresh(); // else wait for a key: no 401 to show
