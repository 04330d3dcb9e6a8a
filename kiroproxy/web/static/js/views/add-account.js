// Add account: sign in with a code, Google / GitHub with the copy-back, scan this server, paste a token file.

import {api} from '../api.js';
import {act, card, clear, copyField, countdown, empty, h, readText, toast, when} from '../dom.js';

const METHODS = [['device', 'Sign in with a code'], ['social', 'Google / GitHub'], ['scan', 'Scan this server'], ['paste', 'Paste a token file']];

export async function render(main, ctx) {
  const method = METHODS.some(([m]) => m === ctx.query.get('method')) ? ctx.query.get('method') : 'device';
  const panel = h('div', {role: 'tabpanel', id: 'add-panel', 'aria-labelledby': `tab-${method}`});
  const tabs = h('div', {class: 'tabs', role: 'tablist', 'aria-label': 'How to add the account'}, METHODS.map(([m, label]) =>
    h('button', {role: 'tab', id: `tab-${m}`, 'aria-selected': String(m === method), 'aria-controls': 'add-panel',
      onclick: () => ctx.go(`#/accounts/add?method=${m}`, true)}, label)));
  main.append(h('p', null, h('a', {href: '#/accounts'}, '← Accounts')), ctx.title('Add account'), tabs, panel);
  ({device, social, scan, paste})[method](panel, ctx);
}

const added = (account) => h('p', {role: 'status'}, 'Added account ',
  h('a', {href: `#/accounts/${encodeURIComponent(account.id)}`}, account.name || account.id), '.');


function device(panel, ctx) {
  const startUrl = h('input', {id: 'dev-start-url', type: 'url', class: 'grow', placeholder: 'https://your-org.awsapps.com/start'});
  const region = h('input', {id: 'dev-region', class: 'grow', placeholder: 'us-east-1'});
  const status = h('p', {role: 'status', class: 'login-status'});
  const area = h('div');
  const start = h('button', {type: 'submit', class: 'primary'}, 'Start');
  const form = h('form', {onsubmit: async (e) => {
    e.preventDefault();
    start.disabled = true;
    status.textContent = 'Starting…';
    try {
      const body = {};
      if (startUrl.value.trim()) { body.start_url = startUrl.value.trim(); body.region = region.value.trim() || undefined; }
      const login = await api.deviceStart(body);
      form.hidden = true;
      showCode(area, status, login, ctx, () => { form.hidden = false; start.disabled = false; clear(area); });
    } catch (error) {
      if (!error.handled) status.textContent = `Could not start: ${error.message}`;
      start.disabled = false;
    }
  }}, h('p', null, 'You get a code to approve on the AWS sign-in page, on this or any other device.'),
  h('details', null, h('summary', null, 'Organization account (IAM Identity Center)'),
    h('label', {for: 'dev-start-url'}, 'Start URL'), startUrl, h('label', {for: 'dev-region'}, 'Region'), region),
  h('div', {class: 'row'}, start));
  panel.append(h('section', {class: 'card'}, h('h2', null, 'AWS Builder ID or Identity Center'), form, area, status));
}

function showCode(area, status, login, ctx, restart) {
  const code = login.user_code;
  let done = false;
  const cancel = h('button', {onclick: async () => {
    done = true;
    try { await api.deviceCancel(login.id); } catch (e) { /* it ends by itself */ }
    finish('The sign-in was cancelled.');
  }}, 'Cancel');
  const finish = (text, account) => {
    done = true;
    clear(area, account ? null : h('button', {class: 'primary', onclick: restart}, 'Start again'));
    clear(status, account ? added(account) : text);
  };
  clear(area, h('p', null, 'Enter this code on the sign-in page:'), copyField(code, 'Code', {big: true}),
    h('div', {class: 'row'}, h('a', {class: 'button primary', href: login.verification_uri_complete, target: '_blank', rel: 'noopener noreferrer'}, 'Open sign-in page')),
    copyField(login.verification_uri_complete, 'Link'),
    h('p', {class: 'note'}, 'The code expires in ', countdown(login.expires_at, 'the code expires'), '.'), h('div', {class: 'row'}, cancel));
  status.textContent = 'Waiting for you to approve…';
  const poll = async (wait) => {
    await new Promise((r) => setTimeout(r, wait * 1000));
    if (done || !ctx.live()) { if (!done && !ctx.live()) api.deviceCancel(login.id).catch(() => {}); return; }
    let result;
    try {
      result = await api.devicePoll(login.id);
    } catch (error) {
      if (error.handled) return;
      status.textContent = `Checking failed (${error.message}); trying again…`;
      return poll(Math.max(5, login.interval));
    }
    if (result.status === 'pending') return poll(Math.max(login.interval || 1, result.retry_after || 0));
    if (result.status === 'success') { finish('', result.account || {id: result.account_id}); toast('Account added.'); return; }
    finish({expired: 'The code expired before it was approved.', denied: 'The sign-in was denied.',
      cancelled: 'The sign-in was cancelled.'}[result.status] || `The sign-in failed: ${result.message || result.status}`);
  };
  poll(Math.max(login.interval || 1, 1));
}


export function checkPasted(text, expectedState) {
  const value = text.trim();
  if (!value) return {code: false, state: null};
  if (!value.includes('=')) return {code: true, state: null};
  const query = value.includes('?') ? value.slice(value.indexOf('?') + 1) : value;
  const params = new URLSearchParams(query.split('#')[0]);
  const state = params.get('state');
  return {code: !!params.get('code'), state: state ? state === expectedState : null, error: params.get('error')};
}

function social(panel) {
  const area = h('div');
  const pick = (provider) => async () => {
    try {
      const login = await api.socialStart(provider);
      socialSteps(area, login, pick(provider));
    } catch (error) { if (!error.handled) clear(area, h('p', {class: 'error'}, `Could not start: ${error.message}`)); }
  };
  panel.append(h('section', {class: 'card'}, h('h2', null, 'Sign in with Google or GitHub'),
    h('div', {class: 'row'}, h('button', {class: 'primary', onclick: pick('google')}, 'Google'),
      h('button', {class: 'primary', onclick: pick('github')}, 'GitHub')), area));
}

function socialSteps(area, login, restart) {
  const expected = new URL(login.url).searchParams.get('state');
  const field = h('textarea', {id: 'social-paste', rows: 3, spellcheck: false, 'aria-describedby': 'social-check'});
  const check = h('p', {id: 'social-check', class: 'small', 'aria-live': 'polite'});
  const status = h('p', {role: 'status'});
  const finish = h('button', {type: 'submit', class: 'primary', disabled: true}, 'Finish');
  field.addEventListener('input', () => {
    const c = checkPasted(field.value, expected);
    check.textContent = !field.value.trim() ? '' : c.error ? `The sign-in reports an error: ${c.error}`
      : `contains code ${c.code ? '✓' : '✗'} · state ${c.state === null ? '(not in the text)' : c.state ? '✓' : '✗ belongs to another sign-in'}`;
    finish.disabled = !c.code || c.state === false;
  });
  const form = h('form', {onsubmit: async (e) => {
    e.preventDefault();
    finish.disabled = true;
    status.textContent = 'Finishing…';
    try {
      const result = await api.socialExchange({url: field.value.trim(), id: login.id});
      clear(status, added(result.account || {id: result.account_id}));
      field.value = '';
      toast('Account added.');
    } catch (error) {
      if (error.handled) return;
      clear(status, h('span', {class: 'error'}, error.message), ' ', h('button', {onclick: restart}, 'Start again'));
      finish.disabled = false;
    }
  }}, h('label', {for: 'social-paste'}, 'Step 3: paste the address (or just the code) here'), field, check, h('div', {class: 'row'}, finish));
  clear(area, h('ol', {class: 'steps'},
    h('li', null, 'Open the sign-in page and sign in with ', login.provider, '.',
      h('div', {class: 'row'}, h('a', {class: 'button', href: login.url, target: '_blank', rel: 'noopener noreferrer'}, 'Open sign-in page')),
      copyField(login.url, 'Link')),
    h('li', null, 'After you sign in, the browser tries to open a kiro:// or localhost address and shows an error page. ',
      h('strong', null, 'That is expected.'), ' Copy the whole address from the address bar (on a phone: long-press the address bar).'),
    h('li', null, form)),
  h('p', {class: 'note'}, `This sign-in expires ${when(login.expires_at)}.`), status);
}


function scan(panel) {
  const list = card('Kiro token files on this server', async (body) => {
    const {tokens, scanned} = await api.scan();
    if (!tokens.length) {
      clear(body, empty(`No Kiro token files under ${scanned} on the server. Sign in with Kiro IDE or kiro-cli on the server, or use Sign in with a code.`,
        h('a', {class: 'button', href: '#/accounts/add?method=device'}, 'Sign in with a code')));
      return;
    }
    clear(body, h('ul', {class: 'plain'}, tokens.map((t) => h('li', {class: 'card'},
      h('p', {class: 'mono small'}, t.path),
      h('p', {class: 'small'}, `${t.auth_method || 'unknown'}${t.provider ? ` · ${t.provider}` : ''}${t.region ? ` · ${t.region}` : ''} · ` +
        (t.expires_at ? `token ${t.expires_at > Date.now() / 1000 ? 'expires' : 'expired'} ${when(t.expires_at)}` : 'expiry unknown')),
      t.problem ? h('p', {class: 'small error'}, t.problem) : null,
      t.already_added ? h('p', {class: 'note'}, 'Already added ', h('a', {href: `#/accounts/${encodeURIComponent(t.account_id)}`}, 'open'))
        : h('button', {class: 'primary', disabled: !!t.problem && !t.auth_method, onclick: async (e) => {
          const result = await act(e.currentTarget, 'Not added', () => api.addFromScan(t.path));
          if (result) { toast(`Added ${result.account.name || result.account.id}.`); list.reload(true); }
        }}, 'Add')))));
  }, {actions: h('button', {onclick: () => list.reload()}, 'Scan again')});
  panel.append(list);
}


export function inspectToken(text) {
  let data;
  try { data = JSON.parse(text); } catch (e) { return {error: `Not valid JSON: ${e.message}`}; }
  if (!data || typeof data !== 'object' || Array.isArray(data)) return {error: 'The file must hold a JSON object.'};
  const mask = (v) => v ? `…(${String(v).length} chars)` : '';
  const found = [['accessToken', mask(data.accessToken)], ['refreshToken', mask(data.refreshToken)],
    ['expiresAt', data.expiresAt || ''], ['authMethod', data.authMethod || ''], ['region', data.region || ''], ['provider', data.provider || '']];
  if (!data.refreshToken) return {data, found, error: 'No refreshToken in this file: the account could not stay signed in.'};
  return {data, found};
}

function paste(panel) {
  const text = h('textarea', {id: 'paste-token', rows: 8, spellcheck: false, class: 'code', autocomplete: 'off', 'aria-describedby': 'paste-check',
    placeholder: '{"accessToken": "…", "refreshToken": "…", "expiresAt": "…", "authMethod": "social", …}'});
  const file = h('input', {id: 'paste-file', type: 'file', accept: '.json,application/json'});
  const name = h('input', {id: 'paste-name', class: 'grow', autocomplete: 'off'});
  const check = h('div', {id: 'paste-check', 'aria-live': 'polite'});
  const status = h('p', {role: 'status'});
  const submit = h('button', {type: 'submit', class: 'primary', disabled: true}, 'Add account');
  const inspect = () => {
    const result = text.value.trim() ? inspectToken(text.value) : null;
    clear(check, result && result.found ? h('p', {class: 'found'}, result.found.map(([k, v]) => h('span', null, `${k} ${v ? '✓' : '–'} ${v}`))) : null,
      result && result.error ? h('p', {class: 'error'}, result.error) : null);
    text.setAttribute('aria-invalid', String(!!(result && result.error)));
    submit.disabled = !result || !!result.error;
    return result;
  };
  text.addEventListener('input', inspect);
  readText(file, (content) => { text.value = content; inspect(); });
  const form = h('form', {onsubmit: async (e) => {
    e.preventDefault();
    const result = inspect();
    if (!result || result.error) return;
    submit.disabled = true;
    try {
      const answer = await api.addAccount({token: result.data, name: name.value.trim() || undefined});
      text.value = '';
      file.value = '';
      clear(check);
      clear(status, added(answer.account), answer.message ? ` ${answer.message}` : '');
      toast(answer.created ? 'Account added.' : 'Account updated.');
    } catch (error) {
      if (!error.handled) clear(status, h('span', {class: 'error'}, `Not added: ${error.message}`));
      submit.disabled = false;
    }
  }}, h('p', null, 'The contents of kiro-auth-token.json (in ~/.aws/sso/cache where Kiro is signed in). It is read here, not uploaded as a file.'),
  h('label', {for: 'paste-token'}, 'Token file contents'), text, check,
  h('label', {for: 'paste-file'}, 'Or choose the file'), file,
  h('label', {for: 'paste-name'}, 'Name (optional)'), name, h('div', {class: 'row'}, submit));
  panel.append(h('section', {class: 'card'}, h('h2', null, 'Paste a token file'), form, status));
}
