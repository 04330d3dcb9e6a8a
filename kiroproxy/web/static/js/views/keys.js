// Client keys: list, create (the key is shown once), revoke. Hidden when the server has no key store.

import {api} from '../api.js';
import {act, ago, ask, card, clear, copyField, h, toast, when} from '../dom.js';

export function keysCard() {
  const fresh = h('div', {'aria-live': 'polite'});
  const name = h('input', {id: 'key-name', class: 'grow', autocomplete: 'off', placeholder: 'laptop'});
  const section = card('Client keys', async (body) => {
    let data;
    try {
      data = await api.keys();
    } catch (error) {
      if (error.status === 404) { section.hidden = true; return; }
      throw error;
    }
    const form = h('form', {class: 'row', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const made = await api.addKey({name: name.value.trim() || undefined});
        name.value = '';
        clear(fresh, h('p', null, `New key "${made.name}": copy it now, it is shown only once.`), copyField(made.key, 'Key'));
        section.reload(true);
      } catch (error) { if (!error.handled) toast(`No key created: ${error.message}`, 'error'); }
    }}, h('label', {for: 'key-name', class: 'sr'}, 'Name of the new key'), name, h('button', {type: 'submit', class: 'primary'}, 'Create key'));
    const rows = data.keys.map((k) => h('li', {class: 'row'}, h('span', {class: 'grow'}, h('strong', null, k.name), ' ',
      h('span', {class: 'mono small'}, `${k.prefix}…`), h('span', {class: 'note'}, ` · created ${when(k.created)} · used ${ago(k.last_used)}`)),
    h('button', {onclick: async (e) => {
      const revoke = e.currentTarget;
      const answer = await ask({title: `Revoke ${k.name}?`, danger: true, confirm: 'Revoke key',
        body: h('p', null, `Clients using the key "${k.name}" (${k.prefix}…) will be refused from now on.`)});
      if (answer !== 'yes') return;
      await act(revoke, 'Not revoked', async () => { await api.deleteKey(k.name); toast(`Revoked ${k.name}.`); section.reload(true); });
    }}, 'Revoke…')));
    clear(body, h('p', {class: 'note'}, 'Clients send one of these keys as their API key. ' +
      (data.settings_keys ? `${data.settings_keys} more key(s) come from the configuration.` : '')),
    rows.length ? h('ul', {class: 'plain'}, rows) : h('p', null, 'No client keys yet: any client on an allowed address can use the proxy.'), form, fresh);
  });
  return section;
}
