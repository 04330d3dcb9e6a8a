// One account: every field, rename and proxy, the live usage breakdown, its recent flows.

import {api} from '../api.js';
import {ago, badge, card, clear, count, dl, h, iso, ms, num, toast, when} from '../dom.js';
import {S, authLabel} from '../strings.js';
import {actions, quotaBar} from './accounts.js';
import {flowRow} from './flows.js';

export async function render(main, ctx) {
  const id = ctx.params[0];
  const heading = ctx.title('Account');
  main.append(h('p', null, h('a', {href: '#/accounts'}, '← Accounts')), heading);
  const facts = card('Details', async (body) => {
    const {account: a} = await api.account(id);
    heading.textContent = a.name || a.id;
    const usageSlot = h('div');
    clear(body, h('div', {class: 'chipline'}, badge(a.state, S.states[a.state] + (a.reason ? `: ${a.reason}` : '')),
      h('span', {class: 'badge'}, authLabel(a))),
    dl([['Id', a.id], ['Sign-in', `${authLabel(a)} (${a.auth_method})`], ['Region', a.region || '–'],
      a.start_url && ['Start URL', a.start_url], a.profile_arn && ['Profile', a.profile_arn],
      ['Token expires', a.token_expires_at ? `${when(a.token_expires_at)} (${iso(a.token_expires_at)})` : '–'],
      a.cooldown_until && ['Cooldown until', when(a.cooldown_until)], a.exhausted_until && ['Exhausted until', when(a.exhausted_until)],
      ['Requests', `${num(a.requests)} (${count(a.errors, 'error')}, ${a.in_flight} in flight)`], ['Last used', ago(a.last_used)],
      a.last_error && ['Last error', a.last_error], ['Source file', a.source_path || '–'], ['Proxy', a.proxy_url || 'none'],
      ['Added', when(a.created_at)]]),
    actions(a, usageSlot, (updated) => { if (updated) facts.reload(true); else ctx.go('#/accounts'); }), usageSlot);
    fillEdit(a);
  });
  const editBody = h('div');
  const edit = h('section', {class: 'card'}, h('h2', null, 'Name and outbound proxy'), editBody);
  const fillEdit = (a) => {
    const name = h('input', {id: 'acc-name', value: a.name || '', class: 'grow'});
    const proxy = h('input', {id: 'acc-proxy', value: a.proxy_url || '', placeholder: 'http://user:pass@host:port', class: 'grow'});
    const form = h('form', {onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api.patchAccount(id, {name: name.value, proxy_url: proxy.value.trim() || null});
        toast('Saved.');
        facts.reload(true);
      } catch (error) { if (!error.handled) toast(`Not saved: ${error.message}`, 'error'); }
    }}, h('label', {for: 'acc-name'}, 'Name'), name, h('label', {for: 'acc-proxy'}, 'Outbound proxy (optional)'), proxy,
    h('div', {class: 'row'}, h('button', {type: 'submit', class: 'primary'}, 'Save')));
    clear(editBody, form);
  };
  const usage = card('Usage', async (body) => {
    const entry = await api.usage(id);
    const q = entry.quota;
    clear(body, quotaBar(q, 'Credits'), dl([['Subscription', q.subscription || '–'], ['Email', q.email || '–'],
      ['Used / limit', `${num(q.used, 2)} / ${num(q.limit, 2)}`], ['Bonus', `${num(q.bonus_used, 2)} / ${num(q.bonus_limit, 2)}`],
      q.trial_status && ['Free trial', `${q.trial_status}: ${num(q.trial_used, 2)} / ${num(q.trial_limit, 2)}${q.trial_expires_at ? `, ends ${when(q.trial_expires_at)}` : ''}`],
      ['Overage', q.overage || '–'], ['Next reset', q.next_reset_at ? when(q.next_reset_at) : '–'],
      ['Checked', ago(entry.fetched_at)]]));
  }, {actions: h('button', {onclick: () => usage.reload()}, 'Check again')});
  const flows = card('Recent flows of this account', async (body) => {
    const {flows: rows} = await api.flows({account: id, limit: 10});
    clear(body, rows.map((f) => flowRow(f)), h('a', {href: `#/flows?account=${encodeURIComponent(id)}`}, 'All flows of this account'));
  });
  main.append(facts, usage, edit, flows);
}
