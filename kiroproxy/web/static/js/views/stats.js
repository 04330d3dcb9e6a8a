// Stats: the last 24 hours per hour beside the all-time totals; every chart has a table view.

import {api} from '../api.js';
import {share, stacked, table, withTable} from '../charts.js';
import {card, clear, count, dl, empty, h, ms, num} from '../dom.js';

const hourLabel = (epoch) => new Date(epoch * 1000).toLocaleTimeString('en-GB', {hour: '2-digit', minute: '2-digit'});

export async function render(main, ctx) {
  let names = {};
  const load = async () => {
    const [detail, totals, accounts] = await Promise.all([api.statsDetailed(), api.stats(), api.accounts().catch(() => ({accounts: []}))]);
    names = Object.fromEntries(accounts.accounts.map((a) => [a.id, a.name || a.id]));
    return {detail, totals};
  };
  let data = load();
  const section = (title, draw) => card(title, async (body) => { const d = await data; clear(body, draw(d)); });
  const cards = [
    section('Totals', ({totals, detail}) => {
      const all = totals.all_time || {}, since = totals.since_start || {}, day = detail.latency_24h || {};
      return dl([['Requests (24 h)', num(day.requests)], ['Error rate (24 h)', `${((day.error_rate || 0) * 100).toFixed(1)} %`],
        ['Requests (all time)', `${num(all.requests)} · ${count(all.errors, 'error')}`],
        ['Tokens (all time)', `${num(all.input_tokens)} in · ${num(all.output_tokens)} out`],
        ['Since this start', `${count(since.requests, 'request')} · ${count(since.errors, 'error')}`]]);
    }),
    section('Requests per hour', ({detail}) => {
      const hours = detail.hourly || [];
      const ok = hours.map((x) => x.requests - x.errors), bad = hours.map((x) => x.errors);
      const total = hours.reduce((s, x) => s + x.requests, 0);
      const chart = stacked([{values: ok, cls: 'ok'}, {values: bad, cls: 'bad'}], hours.map((x) => hourLabel(x.hour)),
        total ? `Requests per hour over the last 24 hours: ${total} in all, ${bad.reduce((a, b) => a + b, 0)} errors` : 'No requests in the last 24 hours');
      return [legend([['ok', 'ok'], ['bad', 'errors']]), withTable(chart, table(hours, [['Hour', (x) => hourLabel(x.hour)],
        ['Requests', (x) => num(x.requests), true], ['Errors', (x) => num(x.errors), true]], 'Requests per hour'))];
    }),
    section('Tokens per hour', ({detail}) => {
      const hours = detail.hourly || [];
      const chart = stacked([{values: hours.map((x) => x.input_tokens), cls: 'in'}, {values: hours.map((x) => x.output_tokens), cls: 'out'}],
        hours.map((x) => hourLabel(x.hour)), `Tokens per hour over the last 24 hours: ${hours.reduce((s, x) => s + x.input_tokens, 0)} in, ` +
        `${hours.reduce((s, x) => s + x.output_tokens, 0)} out`);
      return [legend([['in', 'in'], ['out', 'out']]), withTable(chart, table(hours, [['Hour', (x) => hourLabel(x.hour)],
        ['In', (x) => num(x.input_tokens), true], ['Out', (x) => num(x.output_tokens), true]], 'Tokens per hour'))];
    }),
    section('Latency (24 h)', ({detail}) => {
      const day = detail.latency_24h || {};
      const rows = [['Time to first byte', day.ttfb_ms || {}], ['Total duration', day.duration_ms || {}]];
      const max = Math.max(1, ...rows.flatMap(([, p]) => [p.p50, p.p90, p.p99].filter(Boolean)));
      return table(rows, [['', (r) => r[0]], ...['p50', 'p90', 'p99'].map((p) => [p, (r) => [ms(r[1][p]), ' ', share(r[1][p] || 0, max)], true])], 'Latency percentiles');
    }),
    section('Errors by kind', ({detail}) => {
      const rows = Object.entries(detail.errors_by_kind || {}).sort((a, b) => b[1] - a[1]);
      if (!rows.length) return empty('No errors recorded.');
      const max = rows[0][1];
      return table(rows, [['Kind', (r) => r[0]], ['Count', (r) => [num(r[1]), ' ', share(r[1], max)], true]], 'Errors by kind');
    }),
    section('Per account', ({detail}) => breakdown(detail.by_account, (k) => names[k] || k, 'account')),
    section('Per model', ({detail}) => breakdown(detail.by_model, (k) => k, 'model')),
    section('Per protocol', ({detail}) => breakdown(detail.by_protocol, (k) => k, 'protocol')),
  ];
  main.append(ctx.title('Stats'), h('div', {class: 'grid'}, cards));
  ctx.every(60, () => { data = load(); for (const c of cards) c.reload(true); });
}

function legend(items) {
  return h('p', {class: 'legend', 'aria-hidden': 'true'}, items.map(([cls, text]) => h('span', null, h('i', {class: cls}), text)));
}

function breakdown(map, label, what) {
  const rows = Object.entries(map || {}).sort((a, b) => b[1].requests - a[1].requests);
  if (!rows.length) return empty(`No requests per ${what} yet.`);
  const max = rows[0][1].requests;
  return table(rows, [[what[0].toUpperCase() + what.slice(1), (r) => label(r[0])],
    ['Requests', (r) => [num(r[1].requests), ' ', share(r[1].requests, max)], true], ['Errors', (r) => num(r[1].errors), true],
    ['Tokens in / out', (r) => `${num(r[1].input_tokens)} / ${num(r[1].output_tokens)}`, true]], `Requests per ${what}`);
}
