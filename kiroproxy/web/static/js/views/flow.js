// One flow: header, timing bar per attempt, request, response, error and raw JSON. Secrets were
// masked by the server when the flow was written; this page shows the masks as they are.

import {api} from '../api.js';
import {timing} from '../charts.js';
import {act, badge, card, clear, copy, dl, download, h, iso, ms, num, stamp, toast, when} from '../dom.js';
import {S} from '../strings.js';
import {apiFilter} from './flows.js';

const RAW_LIMIT = 200 * 1024;

export async function render(main, ctx) {
  const id = ctx.params[0];
  const back = ctx.query.toString();
  const heading = ctx.title('Flow');
  const nav = h('div', {class: 'row'}, h('a', {href: `#/flows${back ? `?${back}` : ''}`}, '← Flows'));
  main.append(nav, heading);
  let names = {};
  const detail = card(null, async (body) => {
    const [flow, accounts] = await Promise.all([api.flow(id), api.accounts().catch(() => ({accounts: []}))]);
    names = Object.fromEntries(accounts.accounts.map((a) => [a.id, a.name || a.id]));
    heading.textContent = `${S.flowStates[flow.state] || flow.state}: ${flow.model || flow.requested_model || flow.path}`;
    clear(body, header(flow, names, () => detail.reload(true)), attempts(flow, names), sections(flow));
  }, {cls: 'bare'});
  main.append(detail);
  neighbours(nav, id, ctx);
}

function header(f, names, reload) {
  const model = f.requested_model && f.model && f.requested_model !== f.model ? `${f.requested_model} → ${f.model}` : f.model || f.requested_model || '–';
  const star = h('button', {'aria-pressed': String(!!f.bookmarked), onclick: (e) => act(e.currentTarget, 'Bookmark failed', async () => {
    await api.mark(f.id, {bookmarked: !f.bookmarked});
    toast(f.bookmarked ? 'Bookmark removed.' : 'Bookmarked: this flow is kept.');
    reload();
  })}, f.bookmarked ? '★ Bookmarked' : '☆ Bookmark');
  const note = h('input', {id: 'flow-note', class: 'grow', value: f.note || ''});
  const tags = h('input', {id: 'flow-tags', class: 'grow', value: (f.tags || []).join(', ')});
  const notes = h('form', {class: 'card', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api.mark(f.id, {note: note.value, tags: tags.value.split(',').map((t) => t.trim()).filter(Boolean)});
      toast('Note saved.');
    } catch (error) { if (!error.handled) toast(`Not saved: ${error.message}`, 'error'); }
  }}, h('label', {for: 'flow-note'}, 'Note'), note, h('label', {for: 'flow-tags'}, 'Tags (comma separated)'), tags,
  h('div', {class: 'row'}, h('button', {type: 'submit'}, 'Save note')));
  const hint = h('span', {class: 'note', 'aria-live': 'polite'});
  return h('section', {class: 'card'},
    h('div', {class: 'chipline'}, badge(f.state, S.flowStates[f.state] || f.state), h('span', {class: 'badge'}, f.protocol),
      f.status ? h('span', {class: 'badge'}, `HTTP ${f.status}`) : null, f.stream ? h('span', {class: 'badge'}, 'stream') : null),
    dl([['Model', model], ['Path', f.path], ['Account', names[f.account_id] || f.account_name || f.account_id || 'none'],
      ['Client', `${f.user_agent || 'unknown'} (${f.client || '?'})`], ['Received', `${when(f.received_at)} · ${iso(f.received_at)}`],
      ['First byte / total', `${ms(f.ttfb_ms)} / ${ms(f.duration_ms)}`],
      ['Tokens', `${num(f.input_tokens)} in · ${num(f.output_tokens)} out` + (f.cache_read_tokens ? ` · ${num(f.cache_read_tokens)} cached` : '') +
        (f.reasoning_tokens ? ` · ${num(f.reasoning_tokens)} reasoning` : '')],
      f.credits !== null && f.credits !== undefined && ['Credits', num(f.credits, 4)], f.stop_reason && ['Stop reason', f.stop_reason],
      f.id && ['Flow id', f.id]]),
    h('p', {class: 'note'}, S.secretsLine),
    h('div', {class: 'row'}, star,
      h('button', {onclick: (e) => act(e.currentTarget, 'Export failed', async () => {
        download(`kiroproxy-flow-${f.id.slice(0, 8)}-${stamp()}.json`, await api.exportFlows({ids: [f.id], format: 'json'}));
      })}, 'Export this flow'),
      h('button', {onclick: () => copy(curl(f), null, hint)}, 'Copy as curl'), hint),
    h('details', {class: 'section'}, h('summary', null, `Note and tags${f.note || (f.tags || []).length ? ' ✎' : ''}`), notes));
}

function curl(f) {
  const body = JSON.stringify((f.request && f.request.body) || {}, null, 2);
  return `curl -sS '${location.origin}${f.path}' \\\n  -H "Authorization: Bearer $KIROPROXY_KEY" \\\n` +
    `  -H 'content-type: application/json' \\\n  --data-binary @- <<'JSON'\n${body}\nJSON\n`;
}

function attempts(f, names) {
  const list = f.attempts || [];
  const start = f.received_at;
  const end = f.completed_at || f.first_byte_at || (list.length ? list[list.length - 1].at : start) || start;
  let from = start;
  const segments = [];
  const words = list.map((a, i) => {
    const to = a.at || from;
    segments.push({from, to, cls: a.outcome === 'ok' ? 'seg-ok' : 'seg-bad', label: `${i + 1} · ${names[a.account_id] || a.account_id}`});
    const text = `${i + 1} · ${names[a.account_id] || a.account_id} · ${a.outcome === 'ok' ? 'ok' : a.outcome}${a.status ? ` ${a.status}` : ''} · ${ms((to - from) * 1000)}` +
      (a.message ? `: ${a.message}` : '');
    from = to;
    return text;
  });
  if (f.first_byte_at && f.completed_at) segments.push({from: f.first_byte_at, to: f.completed_at, cls: 'seg-stream', label: 'response'});
  const label = `Timing: received, ${words.join(', ') || 'no attempt'}, first byte at ${ms(f.ttfb_ms)}, done at ${ms(f.duration_ms)}`;
  return h('section', {class: 'card'}, h('h2', null, `Timing${list.length > 1 ? ` · ${list.length} tries` : ''}`),
    timing(segments, start, Math.max(end, start + 0.001), label),
    h('ol', {class: 'small'}, words.map((w) => h('li', null, w)),
      f.first_byte_at ? h('li', {class: 'muted'}, `first byte ${ms(f.ttfb_ms)} · completed ${ms(f.duration_ms)}`) : null));
}

function block(title, text, open = false) {
  const pre = h('pre', {tabIndex: 0}, text);
  const hint = h('span', {class: 'note', 'aria-live': 'polite'});
  return h('details', {class: 'section', open}, h('summary', null, title), pre,
    h('div', {class: 'row'}, h('button', {onclick: () => copy(text, null, hint)}, 'Copy'),
      h('button', {onclick: () => pre.classList.toggle('nowrap')}, 'Wrap on/off'), hint));
}

const textOf = (content) => typeof content === 'string' ? content : Array.isArray(content)
  ? content.map((p) => p.text || p.input_text || p.output_text || (p.type ? `[${p.type}]` : '')).join('\n') : content ? JSON.stringify(content) : '';

function summary(body) {
  if (!body || typeof body !== 'object') return {system: '', messages: [], tools: []};
  const system = textOf(body.system) || textOf(body.instructions) || textOf(body.systemInstruction && body.systemInstruction.parts);
  const messages = (body.messages || body.contents || (Array.isArray(body.input) ? body.input : body.input ? [{role: 'user', content: body.input}] : []))
    .map((m) => `${m.role || m.type || '?'}: ${textOf(m.content || m.parts || m.output || m.arguments)}`);
  const tools = (body.tools || []).flatMap((t) => t.functionDeclarations ? t.functionDeclarations.map((d) => d.name)
    : [t.name || (t.function && t.function.name) || t.type]);
  return {system, messages, tools};
}

function sections(f) {
  const req = (f.request && f.request.body) || null;
  const sum = summary(req);
  const res = f.response || {};
  const out = [];
  out.push(h('h2', {class: 'sr'}, 'Request and response'));
  out.push(block(`Request · ${sum.messages.length} message${sum.messages.length === 1 ? '' : 's'}${sum.tools.length ? ` · tools: ${sum.tools.join(', ')}` : ''}`,
    [sum.system && `system: ${sum.system}`, ...sum.messages].filter(Boolean).join('\n\n') || '(no body recorded)', true));
  if (f.body_missing) out.push(h('p', {class: 'muted'}, 'The request and response bodies of this flow were not kept.'));
  if (res.thinking) out.push(block('Thinking', res.thinking));
  out.push(block(`Response${res.stop_reason ? ` · ${res.stop_reason}` : ''}`, res.text || '(no text)', true));
  if ((res.tool_calls || []).length) {
    out.push(block(`Tool calls · ${res.tool_calls.length}`, res.tool_calls.map((t) => `${t.name}(${typeof t.input === 'string' ? t.input : JSON.stringify(t.input, null, 2)})`).join('\n\n')));
  }
  if (f.error) out.push(block(`Error · ${f.error.kind || f.error_kind || ''}`, `${f.error.status ? `HTTP ${f.error.status}\n` : ''}${f.error.message || ''}`, true));
  const raw = h('details', {class: 'section'}, h('summary', null, 'Raw JSON'));
  raw.addEventListener('toggle', () => {
    if (!raw.open || raw.childElementCount > 1) return;
    const text = JSON.stringify(f, null, 2);
    const pre = h('pre', {tabIndex: 0}, text.length > RAW_LIMIT ? `${text.slice(0, RAW_LIMIT)}\n… (truncated)` : text);
    raw.append(pre, text.length > RAW_LIMIT ? h('button', {onclick: (e) => { pre.textContent = text; e.target.remove(); }}, 'Show all') : null);
  });
  out.push(raw);
  return h('section', {class: 'card'}, out);
}

async function neighbours(nav, id, ctx) {
  let ids;
  try {
    ids = (await api.flows({...apiFilter(ctx.query), limit: 200})).flows.map((f) => f.id);
  } catch (e) { return; }
  const at = ids.indexOf(id);
  if (at < 0 || !ctx.live()) return;
  const query = ctx.query.toString();
  const link = (target, label) => h('a', {class: 'button', href: `#/flows/${target}${query ? `?${query}` : ''}`}, label);
  const newer = at > 0 ? ids[at - 1] : null, older = at < ids.length - 1 ? ids[at + 1] : null;
  nav.append(h('span', {class: 'grow'}), ...[newer && link(newer, '← Newer'), older && link(older, 'Older →')].filter(Boolean));
  const keys = (e) => {
    if (!nav.isConnected) { document.removeEventListener('keydown', keys); return; }
    if (/INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) return;
    if (e.key === 'ArrowLeft' && newer) ctx.go(`#/flows/${newer}${query ? `?${query}` : ''}`);
    if (e.key === 'ArrowRight' && older) ctx.go(`#/flows/${older}${query ? `?${query}` : ''}`);
  };
  document.addEventListener('keydown', keys);
}
