// Flows: one row per client request, filters and full-text search kept in the hash, paging, export.

import {api} from '../api.js';
import {lastStatus} from '../app.js';
import {ago, ask, badge, bytes, card, clear, download, empty, h, iso, ms, num, stamp, toast} from '../dom.js';
import {S} from '../strings.js';

const STATES = [['', 'All'], ['error', 'Errors'], ['streaming', 'Streaming'], ['completed', 'Completed'], ['cancelled', 'Cancelled']];
const TIMES = [['', 'All time'], ['1h', '1 h', 3600], ['24h', '24 h', 86400], ['7d', '7 d', 604800]];
const KEYS = ['q', 'state', 'bookmarked', 'time', 'protocol', 'model', 'account'];
const FLOW_ID = /^[0-9a-f]{32}$/i;

export function apiFilter(query) {
  const out = {};
  for (const k of ['q', 'state', 'protocol', 'model', 'account']) if (query.get(k)) out[k] = query.get(k);
  if (query.get('bookmarked')) out.bookmarked = 'true';
  const time = TIMES.find(([v]) => v && v === query.get('time'));
  if (time) out.since = Math.floor(Date.now() / 1000 - time[2]);
  return out;
}

export function flowRow(f, query, selected) {
  const model = f.requested_model && f.model && f.requested_model !== f.model ? `${f.requested_model} → ${f.model}` : f.model || f.requested_model || '–';
  const link = h('a', {class: 'flow-row', href: `#/flows/${f.id}${query ? `?${query}` : ''}`},
    h('span', {class: 'main'}, badge(f.state, S.flowStates[f.state] || f.state), h('span', {class: 'badge'}, f.protocol),
      h('span', null, model), f.bookmarked ? h('span', {'aria-label': 'bookmarked', title: 'bookmarked'}, '★') : null),
    h('span', {class: 'note', title: iso(f.received_at)}, ago(f.received_at)),
    h('span', {class: 'meta'}, h('span', null, f.account_name || f.account_id || 'no account'),
      h('span', null, `${ms(f.ttfb_ms)} / ${ms(f.duration_ms)}`), h('span', null, `${num(f.input_tokens)} in · ${num(f.output_tokens)} out`),
      f.attempts && f.attempts.length > 1 ? h('span', null, `${f.attempts.length} tries`) : null,
      f.status && f.status >= 400 ? h('span', {class: 'error'}, `HTTP ${f.status}`) : null,
      f.error ? h('span', {class: 'error'}, (f.error.message || '').slice(0, 120)) : null,
      f.snippet ? h('span', {class: 'snippet'}, `“${f.snippet.slice(0, 80)}”`) : null));
  if (!selected) return link;
  const box = h('input', {type: 'checkbox', 'aria-label': `Select flow ${f.id.slice(0, 8)}`, checked: selected.has(f.id),
    onchange: (e) => (e.target.checked ? selected.add(f.id) : selected.delete(f.id))});
  return h('div', {class: 'sel'}, box, link);
}

export async function render(main, ctx) {
  const query = ctx.query;
  const set = (changes) => {
    for (const [k, v] of Object.entries(changes)) { if (v) query.set(k, v); else query.delete(k); }
    history.replaceState(null, '', `#/flows${query.toString() ? `?${query}` : ''}`);
    drawControls();
    list.reload();
  };
  const selected = new Set();
  const controls = h('div', {class: 'filters'});
  const search = h('input', {id: 'flow-q', type: 'search', class: 'grow', value: query.get('q') || '',
    placeholder: 'Search requests and responses, or paste a flow id', 'aria-describedby': 'flow-q-hint', 'data-slash': ''});
  let timer = 0;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const value = search.value.trim();
      if (FLOW_ID.test(value)) ctx.go(`#/flows/${value.toLowerCase()}`);
      else set({q: value});
    }, 300);
  });

  const selects = h('div', {class: 'row'});
  api.flowStats().then(async (stats) => {
    const names = {};
    try { for (const a of (await api.accounts()).accounts) names[a.id] = a.name || a.id; } catch (e) { /* ids then */ }
    const select = (name, label, values, text = (v) => v) => h('select', {'aria-label': label, onchange: (e) => set({[name]: e.target.value})},
      h('option', {value: ''}, `Any ${label.toLowerCase()}`),
      Object.keys(values || {}).map((v) => h('option', {value: v, selected: query.get(name) === v}, text(v))));
    clear(selects, select('protocol', 'Protocol', stats.by_protocol), select('model', 'Model', stats.by_model),
      select('account', 'Account', stats.by_account, (v) => names[v] || v));
  }).catch(() => {});

  const drawControls = () => {
    const chip = (name, value, label) => h('button', {class: 'chip', 'aria-pressed': String((query.get(name) || '') === value),
      onclick: () => set({[name]: value})}, label);
    const any = KEYS.some((k) => query.get(k));
    clear(controls,
      h('div', {class: 'row'}, h('label', {class: 'sr', for: 'flow-q'}, 'Search flows'), search,
        any ? h('button', {onclick: () => { for (const k of KEYS) query.delete(k); search.value = ''; set({}); }}, 'Clear filters') : null),
      h('p', {id: 'flow-q-hint', class: 'sr'}, 'Press / to search. A pasted flow id opens that flow.'),
      h('div', {class: 'chips', role: 'group', 'aria-label': 'State'}, STATES.map(([v, l]) => chip('state', v, l)),
        chip('bookmarked', query.get('bookmarked') ? '' : '1', '★ Bookmarked')),
      h('div', {class: 'chips', role: 'group', 'aria-label': 'Time'}, TIMES.map(([v, l]) => chip('time', v, l))), selects);
    const pressed = controls.querySelector('[aria-label="State"]').lastChild;
    pressed.setAttribute('aria-pressed', String(!!query.get('bookmarked')));
  };
  drawControls();

  const header = h('p', {class: 'note', id: 'flows-line'});
  let shown = 0, total = 0, next = null;
  const nextOf = (page) => page.next_cursor != null ? {cursor: page.next_cursor} : shown < total ? {offset: shown} : null;
  const list = card(null, async (body) => {
    const params = {...apiFilter(query), limit: 50};
    const page = await api.flows(params);
    shown = page.flows.length;
    total = page.total;
    next = nextOf(page);
    retention(header, total);
    if (!page.flows.length) {
      const any = KEYS.some((k) => query.get(k));
      clear(body, any ? empty('No flows match these filters.', h('a', {class: 'button', href: '#/flows'}, 'Clear filters'))
        : empty(S.noRequests(location.origin), h('a', {class: 'button', href: '#/connect'}, 'Connect clients')));
      return;
    }
    const rows = h('div', {class: 'flowlist'}, page.flows.map((f) => flowRow(f, query.toString(), selected)));
    const more = h('button', {onclick: async () => {
      more.disabled = true;
      try {
        const extra = await api.flows({...params, ...next});
        rows.append(...extra.flows.map((f) => flowRow(f, query.toString(), selected)));
        shown += extra.flows.length;
        next = extra.flows.length ? nextOf(extra) : null;
        more.hidden = !next;
      } catch (error) { if (!error.handled) toast(`Could not load more: ${error.message}`, 'error'); }
      more.disabled = false;
    }}, 'Load more');
    more.hidden = !next;
    clear(body, rows, more, page.partial ? h('p', {class: 'note'}, 'The search stopped at its time budget: load more to search further back.') : null);
  }, {cls: 'bare'});

  const log = h('pre', {class: 'log', hidden: true, tabIndex: 0, 'aria-label': 'Request log'});
  const logButton = h('button', {'aria-expanded': 'false', onclick: async () => {
    log.hidden = !log.hidden;
    logButton.setAttribute('aria-expanded', String(!log.hidden));
    if (!log.hidden) log.textContent = await api.logs({format: 'text', limit: 200}).catch((e) => `Couldn't load: ${e.message}`);
  }}, 'Log');
  main.append(ctx.title('Flows'), controls,
    h('div', {class: 'row'}, header, h('span', {class: 'grow'}),
      h('button', {onclick: () => exportFlows(query, selected, total)}, 'Export…'), logButton),
    log, list);
  ctx.every(15, () => { if (!query.get('q') && shown <= 50) list.reload(true); });
}

function retention(el, total) {
  const store = (lastStatus() || {}).store;
  const parts = [`${num(total)} flow${total === 1 ? '' : 's'} match`];
  if (store) {
    parts.push(`keeping the last ${num(store.max_flows)} flows / ${bytes(store.max_bytes)}`);
    if (store.oldest_at) parts.push(`oldest ${ago(store.oldest_at)}`);
  }
  parts.push('bookmarked flows are kept', 'secrets are never stored');
  el.textContent = parts.join(' · ');
}

async function exportFlows(query, selected, total) {
  const scope = h('fieldset', null, h('legend', null, 'Which flows'),
    h('label', {class: 'check'}, h('input', {type: 'radio', name: 'scope', value: 'filter', checked: true}), `These ${num(total)} flows (current filter)`),
    h('label', {class: 'check'}, h('input', {type: 'radio', name: 'scope', value: 'selected', disabled: !selected.size}), `Selected (${selected.size})`));
  const format = h('fieldset', null, h('legend', null, 'Format'),
    h('label', {class: 'check'}, h('input', {type: 'radio', name: 'format', value: 'jsonl', checked: true}), 'JSONL (one flow per line)'),
    h('label', {class: 'check'}, h('input', {type: 'radio', name: 'format', value: 'json'}), 'JSON'));
  const form = h('div', null, scope, format);
  if (await ask({title: 'Export flows', body: form, confirm: 'Download'}) !== 'yes') return;
  const fmt = form.querySelector('[name=format]:checked').value;
  const which = form.querySelector('[name=scope]:checked').value;
  const body = which === 'selected' ? {ids: [...selected]} : apiFilter(query);
  try {
    const text = await api.exportFlows({...body, format: fmt});
    download(`kiroproxy-flows-${stamp()}.${fmt}`, text, fmt === 'json' ? 'application/json' : 'application/x-ndjson');
    toast('Export downloaded.');
  } catch (error) { if (!error.handled) toast(`Export failed: ${error.message}`, 'error'); }
}
