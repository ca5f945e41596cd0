// @ts-check
/** `/`: submit a URL with `subscribe`, and show the job's events as they arrive. */
import { byId, connectPage, el } from './ui.js';

const pg = connectPage();
const form = /** @type {HTMLFormElement} */ (byId('submit-form'));
const input = /** @type {HTMLInputElement} */ (byId('url'));

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const url = input.value.trim();
  if (url) scrape(url);
});

/** @param {string} url */
async function scrape(url) {
  const events = el('ol', { class: 'events' });
  const meta = el('p', { class: 'meta' }, 'submitting…');
  const outcome = el('div', { class: 'outcome' });
  const card = el('article', { class: 'card job' }, el('h2', {}, url), meta, events, outcome);
  byId('jobs').prepend(card);
  try {
    const job = await pg.submit(url, { subscribe: true });
    card.dataset.requestId = job.request_id;
    meta.textContent = `request ${job.request_id}`;
    job.subscription?.on('publication', ({ data }) => {
      events.append(el('li', { 'data-type': data.type }, label(data)));
      if (data.type === 'result') outcome.replaceChildren(...result(data));
      if (data.type === 'failed') outcome.replaceChildren(failure(data.error.code, data.error.message));
      if (data.type === 'result' || data.type === 'failed') job.subscription?.unsubscribe();
    });
  } catch (error) {
    const { code, message } = /** @type {{code?: number, message: string}} */ (error);
    meta.textContent = 'not submitted';
    outcome.replaceChildren(failure(String(code ?? 'error'), message));
  }
}

/** @param {any} data a job event @returns {string} */
function label(data) {
  if (data.type === 'started') return `started (attempt ${data.attempt})`;
  if (data.type === 'failed') return `failed: ${data.error.code}`;
  return data.type;
}

/** @param {any} data the `result` event @returns {HTMLElement[]} */
function result(data) {
  const links = data.links.map((/** @type {string} */ link) => {
    /** @type {Record<string, string>} */
    const safe = /^https?:/i.test(link) ? { href: link, rel: 'noopener noreferrer nofollow' } : {};
    return el('li', {}, el('a', safe, link));
  });
  const title = data.title ? `“${data.title}”` : 'untitled';
  const count = `${data.links.length}${data.links_truncated ? '+ (truncated)' : ''} links`;
  const summary = `${data.status_code} · ${title} · ${count} · ${data.elapsed_ms} ms`;
  const parts = [el('p', { class: 'summary' }, summary)];
  if (data.final_url !== data.url) parts.push(el('p', { class: 'meta' }, `final URL ${data.final_url}`));
  return [...parts, el('ol', { class: 'links' }, ...links)];
}

/** @param {string} code @param {string} message @returns {HTMLElement} */
function failure(code, message) {
  return el('div', { class: 'failure', role: 'alert' },
    el('strong', { class: 'error-code' }, code), el('span', { class: 'error-message' }, message));
}
