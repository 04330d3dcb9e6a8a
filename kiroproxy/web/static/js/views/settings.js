// Settings: server facts and retention, the effective configuration, export and import, this browser.

import {api} from '../api.js';
import {forget, polling, setTheme} from '../app.js';
import {ask, bytes, card, clear, dl, download, h, readText, span, toast, when} from '../dom.js';
import {keysCard} from './keys.js';


export async function render(main, ctx) {
  const server = card('Server', async (body) => {
    const s = await api.status();
    const store = s.store || {};
    clear(body, dl([['Version', s.version], ['Uptime', span(s.uptime_seconds)], ['Listening on', s.listen],
      ['Data directory', s.data_dir], ['Kiro API', s.upstream && s.upstream.kiro_api], ['Kiro sign-in', s.upstream && s.upstream.kiro_auth],
      ['AWS OIDC', s.upstream && s.upstream.aws_oidc], ['Requests in flight', String(s.in_flight)],
      ['Flow store', `${store.flows} flows, ${bytes(store.bytes)} of ${store.max_flows} flows / ${bytes(store.max_bytes)}` +
        (store.max_age_days ? `, kept up to ${store.max_age_days} days` : '')],
      ['Oldest flow', store.oldest_at ? when(store.oldest_at) : 'none yet'],
      ['Retention', 'Bookmarked flows are kept; secrets are never stored.'],
      ['Tokenizer', s.tokenizer], ['Models', `${s.models.count} (${s.models.source})`]]));
  });
  const config = card('Configuration', async (body) => {
    const doc = JSON.parse(await api.exportConfig(false));
    const settings = Object.entries(doc.settings || {});
    clear(body, h('p', {class: 'note'}, 'Read-only: the settings from config.json (secrets masked). Flags and KIROPROXY_* variables override them.'),
      settings.length ? dl(settings.map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)])) : h('p', null, 'config.json sets nothing: the defaults apply.'),
      h('p', null, `${doc.accounts.length} account${doc.accounts.length === 1 ? '' : 's'} in the export.`));
  });
  const exporter = h('section', {class: 'card'}, h('h2', null, 'Export configuration'),
    h('p', null, 'Settings and accounts as one JSON file. Without tokens it is safe to share; it cannot sign in anywhere.'),
    h('div', {class: 'row'}, h('button', {class: 'primary', onclick: () => exportConfig(false)}, 'Download (secrets masked)'),
      h('button', {onclick: async () => {
        const answer = await ask({title: 'Download with tokens?', danger: true, confirm: 'Download with tokens',
          body: h('p', null, 'The file will contain every account\'s tokens. Anyone with this file can use your accounts. Keep it private.')});
        if (answer === 'yes') exportConfig(true);
      }}, 'Download with tokens…')));
  main.append(ctx.title('Settings'), h('p', null, h('a', {class: 'button', href: '#/connect'}, 'Connect clients'), ' ', h('a', {class: 'button', href: '#/accounts/add'}, 'Add account')), server, config, exporter, importer(() => { config.reload(true); }), keysCard(), browserCard());
}

async function exportConfig(secrets) {
  try {
    download(`kiroproxy-config${secrets ? '-with-tokens' : ''}.json`, await api.exportConfig(secrets));
    toast('Configuration downloaded.');
  } catch (error) { if (!error.handled) toast(`Export failed: ${error.message}`, 'error'); }
}

function importer(done) {
  const file = h('input', {id: 'import-file', type: 'file', accept: '.json,application/json', 'aria-describedby': 'import-preview'});
  const preview = h('div', {id: 'import-preview', 'aria-live': 'polite'});
  const verdict = h('div', {role: 'status'});
  const go = h('button', {class: 'primary', disabled: true}, 'Import');
  let doc = null;
  readText(file, (content) => {
    doc = null;
    go.disabled = true;
    clear(verdict);
      try {
        doc = JSON.parse(content);
      } catch (e) {
        clear(preview, h('p', {class: 'error'}, `This file is not valid JSON: ${e.message}. Nothing was changed.`));
        return;
      }
      const accounts = Array.isArray(doc.accounts) ? doc.accounts.length : 0;
      const settings = doc.settings && typeof doc.settings === 'object' ? Object.keys(doc.settings) : [];
      clear(preview, h('p', null, `${accounts} account${accounts === 1 ? '' : 's'} found; ` +
        (settings.length ? `settings: ${settings.join(', ')}.` : 'no settings.')),
      doc.kiroproxy_export ? null : h('p', {class: 'error'}, 'This does not look like a kiroproxy export; the server will check it.'));
      go.disabled = false;
  });
  go.addEventListener('click', async () => {
    go.disabled = true;
    go.textContent = 'Working…';
    try {
      const r = await api.importConfig(doc);
      const line = (label, items) => items.length ? h('li', null, `${label}: ${items.map((i) => i.name || i.id).join(', ')}`,
        items.some((i) => i.reason) ? h('ul', null, items.filter((i) => i.reason).map((i) => h('li', null, `${i.name || i.id}: ${i.reason}`))) : null) : null;
      clear(verdict, h('p', null, 'Imported.'), h('ul', null, line('Added', r.added), line('Updated', r.updated), line('Skipped', r.skipped),
        r.settings_changed.length ? h('li', null, `Settings changed: ${r.settings_changed.join(', ')}`) : null),
      r.restart_required ? h('p', {class: 'muted'}, 'Restart the server for changed settings to take effect.') : null);
      toast('Import finished.');
      done();
    } catch (error) {
      if (error.handled) return;
      const problems = error.message.replace(/^the import document is invalid: /, '').split('; ');
      clear(verdict, h('p', {class: 'error'}, 'The server rejected this file. Nothing was changed.'),
        h('ul', {class: 'error'}, problems.map((p) => h('li', null, p))));
    } finally {
      go.textContent = 'Import';
      go.disabled = !doc;
    }
  });
  return h('section', {class: 'card'}, h('h2', null, 'Import configuration'),
    h('p', null, 'Choose an export file. You see what it holds before anything changes; the server checks it as a whole and applies all of it or nothing.'),
    h('label', {for: 'import-file'}, 'Export file'), file, preview, h('div', {class: 'row'}, go), verdict);
}

function browserCard() {
  const theme = h('select', {id: 'theme-select', onchange: (e) => setTheme(e.target.value)},
    ['system', 'light', 'dark'].map((t) => h('option', {value: t, selected: (localStorage.getItem('kiroproxy.theme') || 'system') === t}, t)));
  const poll = h('input', {type: 'checkbox', id: 'poll-toggle', checked: polling(), onchange: (e) => localStorage.setItem('kiroproxy.polling', e.target.checked ? 'on' : 'off')});
  return h('section', {class: 'card'}, h('h2', null, 'This browser'),
    h('label', {for: 'theme-select'}, 'Theme'), theme,
    h('label', {class: 'check'}, poll, 'Refresh screens automatically'),
    h('div', {class: 'row'}, h('button', {class: 'danger', onclick: forget}, 'Forget key on this device')));
}


