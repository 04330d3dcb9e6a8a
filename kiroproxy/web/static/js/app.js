// Boot: the key dialog, the hash router, the per-view polling scheduler and the status header.

import {api, call, forgetKey, hooks, key, saveKey} from './api.js';
import {$, ago, clear, h, toast} from './dom.js';
import {S} from './strings.js';

const ROUTES = [
  [/^\/?$/, 'overview', 'overview'],
  [/^\/accounts\/add$/, 'add-account', 'accounts'],
  [/^\/accounts\/([^/]+)$/, 'account', 'accounts'],
  [/^\/accounts$/, 'accounts', 'accounts'],
  [/^\/flows\/([^/]+)$/, 'flow', 'flows'],
  [/^\/flows$/, 'flows', 'flows'],
  [/^\/stats$/, 'stats', 'stats'],
  [/^\/settings$/, 'settings', 'more'],
  [/^\/connect$/, 'connect', 'more'],
  [/^\/more$/, 'settings', 'more'],
];

const state = {timers: [], view: null, paused: false, lastOk: 0, failures: 0, statusTimer: 0, status: null};
export const polling = () => localStorage.getItem('kiroproxy.polling') !== 'off';


export function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return {path, query: new URLSearchParams(query)};
}

export function go(hash, replace = false) {
  if (replace) history.replaceState(null, '', hash);
  else location.hash = hash;
  if (replace) route();
}

async function route() {
  stopTimers();
  const {path, query} = parseHash();
  const found = ROUTES.find(([re]) => re.test(path));
  const main = $('#view');
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (found && a.dataset.nav === found[2]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!found) {
    clear(main, h('h1', {tabIndex: -1}, 'Not found'), h('p', null, 'There is no such screen. ', h('a', {href: '#/'}, 'Go to the overview')));
    return;
  }
  if (!key()) { setConn('', 'Signed out'); openKeyDialog(); clear(main, signedOut()); return; }
  const token = {};
  state.view = token;
  const params = path.match(found[0]).slice(1).map(decodeURIComponent);
  let module;
  try {
    module = await import(`./views/${found[1]}.js`);
  } catch (error) {
    clear(main, h('h1', {tabIndex: -1}, 'Page error'), h('p', {class: 'error'}, `This screen failed to load: ${error.message}`));
    return;
  }
  if (state.view !== token) return;
  const ctx = {
    params, query, go,
    live: () => state.view === token,
    every: (seconds, fn) => state.timers.push({seconds, fn, next: Date.now() + seconds * 1000}),
    title: (text) => h('h1', {tabIndex: -1}, text),
  };
  main.classList.remove('stale');
  clear(main);
  await module.render(main, ctx);
  const heading = main.querySelector('h1');
  if (heading && document.activeElement !== $('#key-input')) heading.focus({preventScroll: true});
  document.title = `${heading ? heading.textContent + ' · ' : ''}kiroproxy`;
}

function stopTimers() {
  state.timers = [];
}

setInterval(() => {
  if (document.hidden || state.paused || !polling() || state.failures) return;
  const now = Date.now();
  for (const timer of state.timers) {
    if (now < timer.next) continue;
    timer.next = now + timer.seconds * 1000;
    timer.fn();
  }
}, 1000);

function signedOut() {
  return h('div', {class: 'empty'}, h('h1', {tabIndex: -1}, 'Sign in'),
    h('p', null, 'Enter the admin key to manage this proxy.'),
    h('button', {class: 'primary', onclick: () => openKeyDialog()}, 'Enter the admin key'));
}


function openKeyDialog(reason = '') {
  const dlg = $('#key-dialog');
  const note = $('#key-reason');
  note.textContent = reason;
  note.hidden = !reason;
  $('#key-error').textContent = '';
  if (!dlg.open) dlg.showModal();
  $('#key-input').focus();
}

async function submitKey(event) {
  event.preventDefault();
  const input = $('#key-input'), error = $('#key-error'), button = $('#key-submit');
  const value = input.value.trim();
  if (!value) { error.textContent = 'Enter the key.'; return; }
  button.disabled = true;
  button.textContent = 'Checking…';
  try {
    await call('status', {withKey: value});
    saveKey(value, $('#key-remember').checked);
    input.value = '';
    input.removeAttribute('aria-invalid');
    $('#key-dialog').close();
    state.paused = false;
    refreshStatus();
    route();
  } catch (e) {
    input.setAttribute('aria-invalid', 'true');
    error.textContent = e.status === 401 ? S.wrongKey : `Could not check the key: ${e.message}`;
    input.select();
  } finally {
    button.disabled = false;
    button.textContent = 'Sign in';
  }
}

hooks.refused = () => {
  state.paused = true;
  stopTimers();
  openKeyDialog(key() ? S.refused : '');
};


hooks.reachable = () => {
  if (!state.failures) { state.lastOk = Date.now(); return; }
  state.failures = 0;
  state.lastOk = Date.now();
  showBanner('');
  $('#view').classList.remove('stale');
  refreshStatus();
};

hooks.unreachable = () => {
  state.failures += 1;
  $('#view').classList.add('stale');
  setConn('down', S.unreachable);
  scheduleStatus();
};

hooks.wrongHost = () => showBanner(S.wrongHost(location.port || '8080'));

function showBanner(text) {
  const banner = $('#banner');
  banner.hidden = !text;
  banner.textContent = text;
}

function setConn(kind, text) {
  $('#conn').className = `conn ${kind}`;
  $('#conn-text').textContent = text;
}

function scheduleStatus() {
  clearTimeout(state.statusTimer);
  const wait = state.failures ? [5, 10, 30][Math.min(state.failures - 1, 2)] : 15;
  if (state.failures) {
    let left = wait;
    const tick = () => {
      const since = state.lastOk ? ` Data shown was updated ${ago(state.lastOk / 1000)}.` : '';
      showBanner(`${S.unreachable}: retrying in ${left} s.${since}`);
      if (left-- > 0 && state.failures) state.bannerTimer = setTimeout(tick, 1000);
    };
    clearTimeout(state.bannerTimer);
    tick();
  }
  state.statusTimer = setTimeout(refreshStatus, wait * 1000);
}

export async function refreshStatus() {
  if (!key() || state.paused) return null;
  try {
    const status = await api.status();
    state.status = status;
    const counts = status.accounts || {};
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    setConn(counts.active ? 'up' : 'warn', total
      ? `Running · ${counts.active} of ${total} account${total === 1 ? '' : 's'} ready`
      : 'Running · no accounts yet');
  } catch (error) {
    if (error.status && error.status !== 401) setConn('warn', `Status failed: ${error.message}`);
  }
  if (!document.hidden) scheduleStatus();
  return state.status;
}

export const lastStatus = () => state.status;


export function setTheme(theme) {
  localStorage.setItem('kiroproxy.theme', theme);
  applyTheme();
}

function applyTheme() {
  const theme = localStorage.getItem('kiroproxy.theme') || 'system';
  if (theme === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $('#theme-btn').textContent = `Theme: ${theme}`;
}

export function forget() {
  forgetKey();
  state.paused = true;
  setConn('', 'Signed out');
  toast('The admin key was removed from this browser.');
  route();
}

function boot() {
  applyTheme();
  $('#key-form').addEventListener('submit', submitKey);
  $('#key-show').addEventListener('change', (e) => { $('#key-input').type = e.target.checked ? 'text' : 'password'; });
  $('#key-cancel').addEventListener('click', () => $('#key-dialog').close());
  $('#forget-btn').addEventListener('click', () => { $('#menu').open = false; forget(); });
  $('#signin-btn').addEventListener('click', () => { $('#menu').open = false; openKeyDialog(); });
  $('#theme-btn').addEventListener('click', () => {
    const order = ['system', 'light', 'dark'];
    setTheme(order[(order.indexOf(localStorage.getItem('kiroproxy.theme') || 'system') + 1) % 3]);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && $('#menu').open) $('#menu').open = false;
    const search = $('[data-slash]');
    if (e.key === '/' && search && !/INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) { e.preventDefault(); search.focus(); }
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshStatus(); });
  window.addEventListener('hashchange', route);
  route();
  refreshStatus();
  document.body.dataset.ready = '1';
}

boot();
