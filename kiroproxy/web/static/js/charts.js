// Inline SVG charts, no library: sparkline, stacked bars, horizontal bars, a timing bar.
// Every chart is role="img" with an aria-label summary; tables carry the same numbers.

import {h, ms, num, svg} from './dom.js';

export function sparkline(values, label, bad = []) {
  const max = Math.max(1, ...values);
  const w = 100 / Math.max(1, values.length);
  return svg('svg', {class: 'spark', viewBox: '0 0 100 28', preserveAspectRatio: 'none', role: 'img', 'aria-label': label},
    values.map((v, i) => {
      const height = v ? Math.max(1.5, (v / max) * 26) : 0.6;
      return svg('rect', {x: i * w + 0.4, y: 28 - height, width: Math.max(0.5, w - 0.8), height, class: bad[i] ? 'bad' : ''});
    }));
}

export function stacked(series, labels, label) {
  const n = labels.length;
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const max = Math.max(1, ...totals);
  const w = 300 / Math.max(1, n);
  const bars = [];
  labels.forEach((_, i) => {
    let y = 120;
    for (const s of series) {
      const height = ((s.values[i] || 0) / max) * 110;
      if (!height) continue;
      y -= height;
      bars.push(svg('rect', {x: 20 + i * w + 0.5, y, width: Math.max(1, w - 1), height, class: s.cls}));
    }
  });
  const ticks = labels.map((text, i) => (i % 6 === 0 ? svg('text', {x: 20 + i * w, y: 136}, text) : null));
  return svg('svg', {class: 'chart', viewBox: '0 0 320 140', role: 'img', 'aria-label': label},
    svg('line', {x1: 20, x2: 320, y1: 120.5, y2: 120.5, class: 'base'}),
    svg('text', {x: 0, y: 14}, num(max)), bars, ticks);
}

export function table(rows, columns, caption) {
  return h('div', {class: 'table-wrap'}, h('table', null, caption && h('caption', {class: 'sr'}, caption),
    h('thead', null, h('tr', null, columns.map(([head, , n]) => h('th', {class: n ? 'n' : '', scope: 'col'}, head)))),
    h('tbody', null, rows.map((row) => h('tr', null, columns.map(([, get, n]) => h('td', {class: n ? 'n' : ''}, get(row))))))));
}

export function withTable(chart, tableEl) {
  tableEl.hidden = true;
  const toggle = h('button', {class: 'link', 'aria-expanded': 'false'}, 'Show as table');
  toggle.addEventListener('click', () => {
    tableEl.hidden = !tableEl.hidden;
    toggle.setAttribute('aria-expanded', String(!tableEl.hidden));
    toggle.textContent = tableEl.hidden ? 'Show as table' : 'Hide table';
  });
  return h('div', null, chart, toggle, tableEl);
}

export const share = (value, max) => h('span', {class: 'share', width: `${Math.round((value / Math.max(1, max)) * 80)}px`});

export function timing(segments, start, end, label) {
  const total = Math.max(0.001, end - start);
  return svg('svg', {class: 'timing', viewBox: '0 0 300 26', preserveAspectRatio: 'none', role: 'img', 'aria-label': label},
    svg('rect', {x: 0, y: 8, width: 300, height: 10, class: 'seg-wait'}),
    segments.map((s) => svg('rect', {x: ((s.from - start) / total) * 300, y: 4,
      width: Math.max(1.5, ((s.to - s.from) / total) * 300), height: 18, class: s.cls},
    svg('title', null, `${s.label}: ${ms((s.to - s.from) * 1000)}`))));
}
