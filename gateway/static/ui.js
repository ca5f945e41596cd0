// @ts-check
/** What the pages share: building elements, the gateway list, the connection badge. */
import { Pushgate } from './pushgate.js';

/**
 * An element with text content (never HTML, so data shows as typed) and attributes.
 * @param {string} tag @param {Record<string, string>} [attrs] @param {...(Node | string)} children
 * @returns {HTMLElement}
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** @param {string} id @returns {HTMLElement} */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`no #${id} on this page`);
  return node;
}

/**
 * A client for this page: `?gateways=ws://a/ws,ws://b/ws` lists replicas to rotate through on
 * reconnects (default: this page's own gateway). Its state is shown in `#status`.
 * @returns {Pushgate}
 */
export function connectPage() {
  const list = new URLSearchParams(location.search).get('gateways');
  const pg = new Pushgate(list ? list.split(',').map((url) => url.trim()) : undefined);
  const badge = byId('status');
  /** @param {string} state @param {string} text @param {string} [title] */
  const show = (state, text, title = '') => {
    badge.dataset.state = state;
    badge.textContent = text;
    badge.title = title;
  };
  pg.on('state', (state) => {
    // Between attempts, keep saying why we are not connected.
    if (state !== 'connecting' || badge.dataset.state !== 'disconnected') show(state, state);
  });
  pg.on('connect', ({ url }) => show('connected', `connected to ${new URL(url).host}`, url));
  pg.on('disconnect', ({ code, reconnect, delay }) => {
    const retry = reconnect ? `, retrying in ${Math.max(1, Math.round(delay / 1000))} s` : '';
    show('disconnected', `disconnected (${code})${retry}`);
  });
  pg.on('closed', (error) => show('closed', error.message));
  pg.connect().catch(() => {}); // failures show in the badge
  return pg;
}
