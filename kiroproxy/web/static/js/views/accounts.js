// Accounts: one card per account with its state and reason, live countdowns, quota bar and one
// main action per state. The quota of every account comes from the server's short cache.

import {api} from '../api.js';
import {act, ago, ask, badge, card, clear, count, countdown, empty, h, num, toast, when} from '../dom.js';
import {S, authLabel} from '../strings.js';

const FILTERS = [['all', 'All'], ['attention', 'Needs attention'], ['active', 'Active'], ['cooldown', 'Cooling'], ['off', 'Off']];
const ATTENTION = ['unhealthy', 'suspended', 'exhausted', 'cooldown'];
const OFF = ['disabled', 'suspended', 'unhealthy', 'exhausted'];

export function quotaBar(q, label) {
  const used = q.used || 0, limit = q.limit || 0;
  const share = limit ? Math.min(1, used / limit) : 0;
  const level = share >= 0.95 || (limit && !q.remaining) ? 'bad' : share >= 0.8 ? 'warn' : '';
  const text = `${num(used, 1)} / ${num(limit, 1)} used · ${num(q.remaining, 1)} left` +
    (q.next_reset_at ? ` · resets ${when(q.next_reset_at)}` : '');
  const bar = h('div', {class: `meter ${level}`, role: 'progressbar', 'aria-label': label, 'aria-valuemin': 0,
    'aria-valuemax': Math.round(limit), 'aria-valuenow': Math.round(used), 'aria-valuetext': text},
  h('span', {width: `${(share * 100).toFixed(1)}%`}));
  const parts = [bar, h('p', {class: 'small quota-text'}, text)];
  if (q.trial_limit && q.trial_status === 'ACTIVE') {
    const t = Math.min(1, (q.trial_used || 0) / q.trial_limit);
    parts.push(h('div', {class: 'meter thin', role: 'progressbar', 'aria-label': 'Free trial credits', 'aria-valuemin': 0,
      'aria-valuemax': Math.round(q.trial_limit), 'aria-valuenow': Math.round(q.trial_used || 0)}, h('span', {width: `${(t * 100).toFixed(1)}%`})),
    h('p', {class: 'note'}, `Free trial: ${num(q.trial_used, 1)} / ${num(q.trial_limit, 1)} used` +
      (q.trial_expires_at ? ` · ends ${when(q.trial_expires_at)}` : '')));
  }
  return h('div', {class: 'quota'}, parts);
}

export async function render(main, ctx) {
  const show = ctx.query.get('show') || 'all';
  const sort = ctx.query.get('sort') || 'name';
  const list = card(null, (body) => loadList(body, show, sort, ctx), {cls: 'bare'});
  const chips = h('div', {class: 'chips', role: 'group', 'aria-label': 'Show'}, FILTERS.map(([value, label]) =>
    h('a', {class: 'chip button', href: `#/accounts?show=${value}&sort=${sort}`, 'aria-current': value === show ? 'true' : null}, label)));
  const sorter = h('select', {id: 'acc-sort', onchange: (e) => ctx.go(`#/accounts?show=${show}&sort=${e.target.value}`)},
    [['name', 'Name'], ['left', 'Quota left'], ['reset', 'Reset soonest']].map(([v, l]) => h('option', {value: v, selected: v === sort}, l)));
  main.append(ctx.title('Accounts'),
    h('div', {class: 'row'}, h('a', {class: 'button primary', href: '#/accounts/add'}, 'Add account'),
      h('button', {onclick: (e) => act(e.currentTarget, 'Refresh failed', async () => {
        const {results} = await api.refreshAll();
        toast(`Refreshed ${results.length} account${results.length === 1 ? '' : 's'}.`);
        list.reload(true);
      })}, 'Refresh all tokens'),
      h('button', {onclick: (e) => act(e.currentTarget, 'Check failed', async () => {
        const {accounts} = await api.refreshCheck();
        const failed = accounts.filter((a) => /fail/.test(a.outcome || ''));
        toast(failed.length ? `${failed.length} token refresh${failed.length === 1 ? '' : 'es'} failed.` : `Checked ${accounts.length} token${accounts.length === 1 ? '' : 's'}: all fine.`, failed.length ? 'error' : 'ok');
        list.reload(true);
      })}, 'Check tokens')),
    chips, h('div', {class: 'row'}, h('label', {for: 'acc-sort'}, 'Sort by'), sorter), list);
  ctx.every(20, () => list.reload(true));
}

async function loadList(body, show, sort, ctx) {
  const {accounts} = await api.accounts();
  if (!accounts.length) {
    clear(body, empty(S.noAccounts, h('a', {class: 'button primary', href: '#/accounts/add'}, 'Add your first account')));
    return;
  }
  const shown = accounts.filter((a) => show === 'all' || (show === 'attention' ? ATTENTION.includes(a.state)
    : show === 'off' ? OFF.includes(a.state) : a.state === show));
  const cards = new Map();
  const grid = h('div', {class: 'grid'});
  for (const account of shown) {
    const el = accountCard(account, ctx, () => body.parentNode.reload(true));
    cards.set(account.id, el);
    grid.append(el);
  }
  clear(body, shown.length ? grid : empty('No accounts match this filter.', h('a', {class: 'button', href: '#/accounts'}, 'Show all')));
  const quota = await api.quota().catch((error) => ({error}));
  for (const row of quota.accounts || []) {
    const el = cards.get(row.id);
    if (el) fillQuota(el.quotaSlot, row, accounts.find((a) => a.id === row.id));
  }
  if (quota.error) for (const el of cards.values()) clear(el.quotaSlot, h('p', {class: 'small error'}, `Quota unknown: ${quota.error.message}`));
  if (sort !== 'name') {
    const key = (a) => {
      const q = (quota.accounts || []).find((r) => r.id === a.id) || {};
      return sort === 'left' ? -((q.quota || a.quota || {}).remaining || 0) : ((q.quota || a.quota || {}).next_reset_at || Infinity);
    };
    [...shown].sort((a, b) => key(a) - key(b)).forEach((a) => grid.append(cards.get(a.id)));
  }
}

export function fillQuota(slot, row, account) {
  const q = row.quota || (account && account.quota);
  if (row.error) {
    clear(slot, h('p', {class: 'small error'}, `Quota unknown: ${row.error}`),
      h('button', {class: 'link', onclick: () => checkUsage(account.id, slot)}, 'Retry'));
  } else if (q) {
    const checked = row.fetched_at || q.fetched_at;
    const title = slot.closest('article') && slot.closest('article').querySelector('.title');
    if (q.email && title && !title.querySelector('.email')) title.append(h('span', {class: 'muted small email'}, q.email));
    clear(slot, quotaBar(q, `${account ? account.name || account.id : ''} credits`),
      checked ? h('p', {class: 'note'}, `checked ${ago(checked)}`) : null);
  } else {
    clear(slot, h('p', {class: 'note'}, `Quota not checked while ${S.states[row.state] ? S.states[row.state].toLowerCase() : row.state}.`));
  }
}

async function checkUsage(id, slot) {
  try {
    const entry = await api.usage(id);
    fillQuota(slot, {quota: entry.quota, fetched_at: entry.fetched_at}, {id});
    toast('Usage checked.');
  } catch (error) {
    if (!error.handled) fillQuota(slot, {error: error.message}, {id});
  }
}

function stateLine(a, reload) {
  const parts = [];
  if (a.state === 'cooldown' && a.cooldown_until) parts.push('cooling down for ', countdown(a.cooldown_until, 'cooldown until', reload));
  if (a.state === 'exhausted' && a.exhausted_until) parts.push('resets in ', countdown(a.exhausted_until, 'resets', reload));
  if (a.state === 'disabled') parts.push(a.reason ? `disabled automatically: ${a.reason}` : 'disabled by hand');
  else if (a.reason) parts.push(parts.length ? ` · ${a.reason}` : a.reason);
  return parts.length ? h('p', {class: 'reason'}, parts) : null;
}

function tokenLine(a) {
  const at = a.token_expires_at;
  if (!at) return h('p', {class: 'note'}, 'token expiry unknown');
  const left = at - Date.now() / 1000;
  return h('p', {class: 'note'}, left > 0 ? ['token valid for ', countdown(at, 'token expires')]
    : `token expired ${ago(at)}${a.state === 'unhealthy' ? ': refresh failed' : ''}`);
}

export function accountCard(a, ctx, reloadAll) {
  const name = a.name || a.id;
  const quotaSlot = h('div', {class: 'quota-slot'}, h('p', {class: 'small muted placeholder'}, 'Checking quota…'));
  const el = h('article', {class: 'card account', 'data-account': a.id},
    h('div', {class: 'title'}, h('a', {href: `#/accounts/${encodeURIComponent(a.id)}`}, name),
      a.quota && a.quota.email ? h('span', {class: 'muted small email'}, a.quota.email) : null),
    h('div', {class: 'chipline'}, badge(a.state, S.states[a.state] + (a.reason && a.state !== 'disabled' ? `: ${a.reason}` : '')),
      h('span', {class: 'badge'}, authLabel(a)), a.proxy_url ? h('span', {class: 'badge'}, `via ${a.proxy_url}`) : null),
    stateLine(a, reloadAll), quotaSlot, tokenLine(a),
    h('p', {class: 'note'}, `${count(a.requests, 'request')} · ${count(a.errors, 'error')} · last used ${ago(a.last_used)}`),
    a.last_error && a.state !== 'active' ? h('p', {class: 'small error'}, a.last_error) : null,
    actions(a, quotaSlot, (updated) => {
      if (!updated) { el.remove(); return; }
      const fresh = accountCard(updated, ctx, reloadAll);
      el.replaceWith(fresh);
      fillQuota(fresh.quotaSlot, {state: updated.state}, updated);
      fresh.querySelector('.actions button').focus();
    }));
  el.quotaSlot = quotaSlot;
  if (a.quota) fillQuota(quotaSlot, {state: a.state}, a);
  return el;
}

export function actions(a, quotaSlot, replace) {
  const name = a.name || a.id;
  const op = (label, call, done) => h('button', {onclick: (e) => act(e.currentTarget, `${label} failed for ${name}`, async () => {
    const result = await call();
    if (done) { toast(done); replace(result.account); }
  })}, label);
  const ops = {
    restore: () => op('Restore', () => api.restore(a.id), `${name} is back in the pool.`),
    refresh: () => op('Refresh token', () => api.refresh(a.id), `Refreshed the token of ${name}.`),
    toggle: () => op(a.enabled ? 'Disable' : 'Enable', () => api.toggle(a.id, !a.enabled), `${name} is ${a.enabled ? 'disabled' : 'enabled'}.`),
    usage: () => op('Check usage', () => checkUsage(a.id, quotaSlot)),
  };
  const main = {cooldown: 'restore', unhealthy: 'refresh', disabled: 'toggle', exhausted: 'restore', suspended: 'restore'}[a.state] || 'usage';
  const first = ops[main]();
  first.classList.add('primary');
  const del = h('button', {class: 'danger', onclick: async (e) => {
    e.currentTarget.closest('details').open = false;
    const answer = await ask({title: `Delete ${name}?`, danger: true, confirm: 'Delete account',
      body: h('p', null, `The account "${name}" and its tokens will be removed from this machine. Its Kiro account itself is not touched.`)});
    if (answer === 'yes') await act(del, 'Delete failed', async () => { await api.deleteAccount(a.id); toast(`Deleted ${name}.`); replace(null); });
  }}, 'Delete…');
  return h('div', {class: 'row actions'}, first,
    a.state === 'unhealthy' ? h('a', {class: 'button', href: '#/accounts/add'}, 'Sign in again') : null,
    h('details', {class: 'more-menu'}, h('summary', {'aria-label': `More actions for ${name}`}, '⋯'),
      h('div', null, Object.keys(ops).filter((k) => k !== main).map((k) => ops[k]()), del)));
}
