// Overview: is it working, and does anything need me? Attention list, pool strip, last 24 h, recent requests.

import {api} from '../api.js';
import {sparkline} from '../charts.js';
import {badge, card, clear, countdown, empty, h, ms, num, when} from '../dom.js';
import {S} from '../strings.js';
import {quotaBar} from './accounts.js';
import {flowRow} from './flows.js';

export async function render(main, ctx) {
  main.append(ctx.title('Overview'));
  const attention = h('section', {class: 'card', hidden: true, 'aria-labelledby': 'att-h'});
  const pool = card('Accounts', loadPool);
  const day = card('Last 24 hours', loadDay);
  const recent = card('Recent requests', loadRecent, {actions: h('a', {href: '#/flows'}, 'All flows')});
  main.append(attention, pool, day, recent);
  await loadAttention(attention);
  ctx.every(15, () => { loadAttention(attention); pool.reload(true); recent.reload(true); });
  ctx.every(60, () => day.reload(true));
}

async function loadAttention(section) {
  let accounts, status, detail;
  try {
    [{accounts}, status, detail] = await Promise.all([api.accounts(), api.status(), api.statsDetailed()]);
  } catch (e) {
    return;  // the cards below show their own errors
  }
  const items = [];
  for (const a of accounts) {
    const name = a.name || a.id;
    const link = (text, href) => h('a', {class: 'button', href}, text);
    if (a.state === 'unhealthy') items.push([3, `${name}: ${a.reason || 'token refresh failed'}`, link('Sign in again', '#/accounts/add')]);
    else if (a.state === 'suspended') items.push([3, `${name}: suspended by Kiro${a.reason ? ` (${a.reason})` : ''}`, link('Open', `#/accounts/${encodeURIComponent(a.id)}`)]);
    else if (a.state === 'exhausted') items.push([2, [`${name} is out of credits, resets in `, countdown(a.exhausted_until, 'resets')], link('Open', `#/accounts/${encodeURIComponent(a.id)}`)]);
    else if (a.state === 'cooldown') items.push([1, [`${name} is cooling down: `, countdown(a.cooldown_until, 'until')], link('Accounts', '#/accounts')]);
  }
  const late = detail.latency_24h || {};
  if (late.requests >= 10 && late.error_rate >= 0.1) {
    items.push([2, `Error rate ${Math.round(late.error_rate * 100)} % in the last 24 hours`, h('a', {class: 'button', href: '#/flows?state=error'}, 'Show errors')]);
  }
  const store = status.store || {};
  const fill = Math.max(store.max_flows ? store.flows / store.max_flows : 0, store.max_bytes ? store.bytes / store.max_bytes : 0);
  if (fill >= 0.9) items.push([1, `The flow store is at ${Math.round(fill * 100)} % of its cap: the oldest flows are being dropped`, h('a', {class: 'button', href: '#/settings'}, 'Settings')]);
  items.sort((a, b) => b[0] - a[0]);
  section.hidden = !items.length;
  clear(section, h('h2', {id: 'att-h'}, 'Needs attention'),
    h('ul', {class: 'plain attention'}, items.map(([, text, fix]) => h('li', null, h('span', null, text), fix))));
}

async function loadPool(body) {
  const [{accounts}, quota] = await Promise.all([api.accounts(), api.quota().catch(() => null)]);
  if (!accounts.length) {
    clear(body, empty(S.noAccounts, h('a', {class: 'button primary', href: '#/accounts/add'}, 'Add your first account')),
      h('p', {class: 'note'}, 'Sign in with a code, with Google or GitHub, scan this server for Kiro token files, or paste a token file.'));
    return;
  }
  const counts = {};
  for (const a of accounts) counts[a.state] = (counts[a.state] || 0) + 1;
  const soonest = Math.min(...accounts.filter((a) => a.cooldown_until).map((a) => a.cooldown_until));
  const strip = h('div', {class: 'strip'}, Object.keys(S.states).map((state) => {
    const extra = state === 'cooldown' && Number.isFinite(soonest) ? [' (', countdown(soonest, 'until'), ')'] : [];
    return h('a', {href: `#/accounts?show=${state}`, class: 'plainlink'}, badge(state, [`${S.states[state]} ${counts[state] || 0}`, ...extra]));
  }));
  const totals = quota && quota.totals;
  clear(body, strip, totals && totals.limit ? h('div', {class: 'quota'}, h('p', {class: 'small'}, 'Pool credits'),
    quotaBar(totals, 'Pool credits'),
    totals.next_reset_at ? h('p', {class: 'note'}, `Soonest reset ${when(totals.next_reset_at)}`) : null) : null);
}

async function loadDay(body) {
  const detail = await api.statsDetailed();
  const hours = detail.hourly || [];
  const late = detail.latency_24h || {};
  const requests = hours.map((x) => x.requests);
  const errors = hours.map((x) => x.errors);
  const sum = (list) => list.reduce((a, b) => a + b, 0);
  const kpi = (label, value, chart) => h('div', {class: 'kpi'}, h('span', {class: 'note'}, label), h('b', null, value), chart);
  clear(body, h('div', {class: 'kpis'},
    kpi('Requests', num(sum(requests)), sparkline(requests, `Requests per hour, last 24 hours: ${requests.join(', ')}`, errors.map((e, i) => e && e === requests[i]))),
    kpi('Error rate', `${((late.error_rate || 0) * 100).toFixed(1)} %`, sparkline(errors, `Errors per hour: ${errors.join(', ')}`, errors.map(Boolean))),
    kpi('Time to first byte', `p50 ${ms(late.ttfb_ms && late.ttfb_ms.p50)} · p90 ${ms(late.ttfb_ms && late.ttfb_ms.p90)}`, null),
    kpi('Tokens in / out', `${num(sum(hours.map((x) => x.input_tokens)))} / ${num(sum(hours.map((x) => x.output_tokens)))}`,
      sparkline(hours.map((x) => x.input_tokens + x.output_tokens), 'Tokens per hour'))));
}

async function loadRecent(body) {
  const {flows} = await api.flows({limit: 8});
  clear(body, flows.length ? h('div', null, flows.map((f) => flowRow(f)))
    : empty(S.noRequests(location.origin), h('a', {class: 'button', href: '#/connect'}, 'Connect clients')));
}
