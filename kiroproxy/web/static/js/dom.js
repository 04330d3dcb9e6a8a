// DOM building, formatting, toasts, dialogs and copy buttons. Data only ever enters the page as
// text nodes or properties: no HTML parsing of data, no style attributes (the CSP forbids those).

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (tag === 'button') el.type = 'button';
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'width') el.style.width = value;
    else if (key in el && !key.startsWith('aria') && key !== 'role' && key !== 'for') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  put(el, children);
  return el;
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  put(el, children);
  return el;
}

function put(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function clear(el, ...children) {
  el.replaceChildren();
  put(el, children);
  return el;
}


export const num = (n, digits = 0) =>
  n === null || n === undefined ? '–' : Number(n).toLocaleString('en', {maximumFractionDigits: digits});

/** "1 request", "2 requests", "– requests" when unknown. */
export const count = (n, noun) => `${num(n)} ${noun}${n === 1 ? '' : 's'}`;

export function ms(value) {
  if (value === null || value === undefined) return '–';
  return value >= 1000 ? `${(value / 1000).toFixed(value >= 10000 ? 0 : 1)} s` : `${Math.round(value)} ms`;
}

export function bytes(n) {
  if (!n) return '0 B';
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

export function span(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  const d = Math.floor(seconds / 86400), hr = Math.floor(seconds % 86400 / 3600);
  const m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
  if (d) return `${d} d ${hr} h`;
  if (hr) return `${hr} h ${m} min`;
  if (m >= 10) return `${m} min`;
  return `${m}:${String(s).padStart(2, '0')}`;
}

export function ago(epoch) {
  if (!epoch) return 'never';
  const s = Date.now() / 1000 - epoch;
  if (s < 5) return 'just now';
  if (s < 0) return 'in ' + span(-s);
  return span(s).replace(/^0:(\d\d)$/, '$1 s') + ' ago';
}

export function when(epoch) {
  if (!epoch) return '–';
  const d = new Date(epoch * 1000), now = new Date();
  const time = d.toLocaleTimeString('en-GB', {hour: '2-digit', minute: '2-digit'});
  const day = new Date(d); day.setHours(0, 0, 0, 0);
  const today = new Date(now); today.setHours(0, 0, 0, 0);
  const diff = Math.round((day - today) / 86400000);
  if (diff === 0) return `today ${time}`;
  if (diff === 1) return `tomorrow ${time}`;
  if (diff === -1) return `yesterday ${time}`;
  return d.toLocaleDateString('en-GB', {day: 'numeric', month: 'short', year: d.getFullYear() === now.getFullYear() ? undefined : 'numeric'}) + ` ${time}`;
}

export const iso = (epoch) => epoch ? new Date(epoch * 1000).toISOString() : '';

const ticking = new Set();
export function countdown(until, label, onZero) {
  const live = h('span', {class: 'tick', 'aria-hidden': 'true'});
  const el = h('span', {class: 'countdown'}, h('span', {class: 'sr'}, `${label} ${when(until)}`), live);
  const entry = {until, live, onZero, done: false};
  ticking.add(entry);
  update(entry);
  return el;
}

function update(entry) {
  const left = entry.until - Date.now() / 1000;
  entry.live.textContent = left > 0 ? span(left) : 'now';
  if (left <= 0 && !entry.done) { entry.done = true; if (entry.onZero) entry.onZero(); }
}

setInterval(() => {
  for (const entry of ticking) {
    if (!entry.live.isConnected) ticking.delete(entry);
    else update(entry);
  }
}, 1000);


export function toast(message, kind = 'ok') {
  const box = $('#toasts');
  const close = h('button', {class: 'link', 'aria-label': 'Dismiss'}, '×');
  const el = h('div', {class: `toast ${kind}`, role: kind === 'error' ? 'alert' : null}, h('span', null, message), close);
  close.addEventListener('click', () => el.remove());
  box.append(el);
  if (kind !== 'error') setTimeout(() => el.remove(), 6000);
  return el;
}

// Run an action from a button: "Working…" while it runs; a failure becomes a toast.
export async function act(button, label, fn) {
  const menu = button.closest('details');
  if (menu) menu.open = false;
  const text = button.textContent;
  button.disabled = true;
  button.textContent = 'Working…';
  try {
    return await fn();
  } catch (error) {
    if (!error.handled) toast(`${label}: ${error.message}`, 'error');
  } finally {
    button.disabled = false;
    button.textContent = text;
  }
}

export function ask({title, body, confirm = 'OK', danger = false, cancel = 'Cancel'}) {
  const opener = document.activeElement;
  const dlg = h('dialog', {'aria-label': title},
    h('form', {method: 'dialog'},
      h('h2', null, title), body,
      h('div', {class: 'row end'},
        cancel && h('button', {value: '', type: 'submit'}, cancel),
        h('button', {value: 'yes', type: 'submit', class: danger ? 'danger' : 'primary'}, confirm))));
  document.body.append(dlg);
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => {
      dlg.remove();
      if (opener && opener.focus) opener.focus();
      resolve(dlg.returnValue);
    });
  });
}


export function copyField(value, label, {multiline = false, big = false} = {}) {
  const field = h(multiline ? 'textarea' : 'input', {readOnly: true, value, class: big ? 'code big' : 'code',
    'aria-label': label, rows: multiline ? Math.min(14, value.split('\n').length + 1) : null, spellcheck: false});
  const hint = h('span', {class: 'note', 'aria-live': 'polite'});
  const button = h('button', {onclick: () => copy(value, field, hint)}, `Copy ${label.toLowerCase()}`);
  return h('div', {class: 'copy'}, field, h('div', {class: 'row'}, button, hint));
}

export async function copy(value, field, hint) {
  try {
    if (!navigator.clipboard) throw new Error('no clipboard');
    await navigator.clipboard.writeText(value);
    hint.textContent = 'Copied.';
  } catch (e) {
    if (field) { field.focus(); field.select(); }
    hint.textContent = 'Press Ctrl+C (or long-press) to copy the selected text.';
  }
}

export function download(name, text, type = 'application/json') {
  const url = URL.createObjectURL(new Blob([text], {type}));
  const a = h('a', {href: url, download: name, hidden: true});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

// Read a chosen file in the browser (it is never uploaded as a file).
export function readText(input, fn) {
  input.addEventListener('change', () => {
    const reader = new FileReader();
    reader.onload = () => fn(reader.result);
    if (input.files[0]) reader.readAsText(input.files[0]);
  });
}

export const stamp = () => new Date().toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-');


export function card(title, load, {cls = '', headingLevel = 'h2', actions = null} = {}) {
  const body = h('div', {class: 'card-body'}, h('p', {class: 'placeholder'}, 'Loading…'));
  const section = h('section', {class: `card ${cls}`},
    title && h('div', {class: 'card-head'}, h(headingLevel, null, title), actions), body);
  let busy = false;
  section.reload = async (quiet = false) => {
    if (busy) return;
    busy = true;
    if (!quiet) section.classList.add('loading');
    try {
      await load(body);
      section.classList.remove('failed');
    } catch (error) {
      if (error && error.name === 'AbortError') return;
      if (error && error.handled) { clear(body, h('p', {class: 'muted'}, error.message)); return; }
      section.classList.add('failed');
      clear(body, h('p', {class: 'error'}, `Couldn't load: ${error && error.message || error}`),
        h('button', {onclick: () => section.reload()}, 'Retry'));
    } finally {
      busy = false;
      section.classList.remove('loading');
    }
  };
  section.reload();
  return section;
}

export function empty(text, action) {
  return h('div', {class: 'empty'}, h('p', null, text), action);
}

export function dl(pairs) {
  return h('dl', {class: 'facts'}, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

export function badge(state, text) {
  const icons = {active: '●', cooldown: '◷', unhealthy: '✕', disabled: '○', suspended: '⊘', exhausted: '◔',
    completed: '✓', error: '✕', streaming: '▶', cancelled: '■', pending: '…'};
  return h('span', {class: `badge s-${state}`}, h('span', {'aria-hidden': 'true'}, icons[state] || '•'), ' ', text || state);
}
