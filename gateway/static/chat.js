// @ts-check
/**
 * `/chat`: rooms are channels `chat:<room>`. Joining reads the room's `history`, then subscribes
 * with `since` = the end of that history, so nothing falls between the two. `?room=` and `?name=`
 * join at once.
 */
import { byId, connectPage, el } from './ui.js';

const pg = connectPage();
const params = new URLSearchParams(location.search);
const nameInput = /** @type {HTMLInputElement} */ (byId('name'));
const roomInput = /** @type {HTMLInputElement} */ (byId('room'));
const textInput = /** @type {HTMLInputElement} */ (byId('text'));
const sendButton = /** @type {HTMLButtonElement} */ (byId('send'));
const messages = byId('messages');
const info = byId('room-info');
/** @type {import('./pushgate.js').Subscription | null} */
let current = null;
let joins = 0; // a newer join wins over one still in progress
/** @type {{ epoch: string, offset: string }} where the history shown ends */
let position = { epoch: '', offset: '' };

nameInput.value = params.get('name') ?? `guest-${Math.floor(Math.random() * 9000 + 1000)}`;
roomInput.value = params.get('room') ?? roomInput.value;

byId('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  join(roomInput.value.trim());
});

byId('send-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = textInput.value.trim();
  if (!text || !current) return;
  try {
    await pg.publish(current.channel, { name: nameInput.value.trim() || 'anonymous', text });
    textInput.value = '';
  } catch (error) {
    notice(`not sent: ${/** @type {Error} */ (error).message}`, { error: '' });
  }
});

/** @param {string} room */
async function join(room) {
  const channel = `chat:${room}`;
  const turn = ++joins;
  const previous = current;
  current = null;
  setSending(false);
  notice(`joining ${room}…`);
  try {
    await previous?.unsubscribe();
    await load(channel);
    if (turn !== joins) return;
    const sub = pg.subscribe(channel, { since: position });
    current = sub;
    sub.on('publication', show);
    sub.on('error', (/** @type {Error} */ error) => notice(`Left ${room}: ${error.message}`, { error: '' }));
    const joined = await sub.ready;
    if (turn !== joins) return;
    if (!joined.recovered) return join(room); // the history moved on before we subscribed: again
    // From here on, (un)recovered reports a resubscribe after a reconnect.
    sub.on('recovered', () => notice(`In ${room}: reconnected, nothing missed.`, { recovered: 'true' }));
    sub.on('unrecovered', async () => {
      await join(room); // history first, then subscribe again from its end
      notice(`In ${room}: messages were lost while disconnected; reloaded.`, { recovered: 'false' });
    });
    notice(`In ${room} as ${nameInput.value}.`);
    document.title = `pushgate · ${room}`;
    setSending(true);
  } catch (error) {
    notice(`could not join ${room}: ${/** @type {Error} */ (error).message}`, { error: '' });
  }
}

/** Shows the room's latest messages, and remembers where they end. @param {string} channel */
async function load(channel) {
  const history = await pg.history(channel);
  messages.replaceChildren();
  for (const pub of history.publications) show(pub);
  position = { epoch: history.epoch, offset: history.offset };
}

/** @param {{ offset: string, data: any }} pub */
function show({ offset, data }) {
  const sent = new Date(Number(offset.split('-')[0]));
  const time = el('time', { datetime: sent.toISOString() }, sent.toLocaleTimeString());
  const text = typeof data?.text === 'string' ? data.text : JSON.stringify(data);
  messages.append(el('li', { 'data-offset': offset },
    el('span', { class: 'author' }, String(data?.name ?? '?')), el('span', { class: 'text' }, text), time));
  messages.scrollTop = messages.scrollHeight;
}

/** @param {string} text @param {Record<string, string>} [marks] data attributes */
function notice(text, marks = {}) {
  info.textContent = text;
  for (const key of Object.keys(info.dataset)) delete info.dataset[key];
  Object.assign(info.dataset, marks);
}

/** @param {boolean} on */
function setSending(on) {
  textInput.disabled = sendButton.disabled = !on;
  if (on) textInput.focus();
}

if (params.has('room')) join(roomInput.value.trim());
