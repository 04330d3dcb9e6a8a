// Connect clients: setup snippets with this server's address filled in, and a connection check.

import {call} from '../api.js';
import {copyField, download, h} from '../dom.js';

const SNIPPETS = {
  'Claude Code': (u, k) => [['Shell', 'claude.sh', `export ANTHROPIC_BASE_URL=${u}\nexport ANTHROPIC_AUTH_TOKEN=${k}\nexport CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\nclaude`],
    ['~/.claude/settings.json', 'settings.json', JSON.stringify({env: {ANTHROPIC_BASE_URL: u, ANTHROPIC_AUTH_TOKEN: k, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1'}}, null, 2)]],
  Codex: (u, k) => [['~/.codex/config.toml', 'config.toml', `model = "gpt-5"\nmodel_provider = "kiroproxy"\ncheck_for_update_on_startup = false\n\n[model_providers.kiroproxy]\nname = "kiroproxy"\nbase_url = "${u}/v1"\nenv_key = "KIROPROXY_KEY"\nwire_api = "responses"\n\n[analytics]\nenabled = false\n[feedback]\nenabled = false\n[features]\nplugins = false\nremote_plugin = false\napps = false\nin_app_updates = false\n`],
    ['Shell', 'codex.sh', `export KIROPROXY_KEY=${k}\ncodex`]],
  'Gemini CLI': (u, k) => [['Shell', 'gemini.sh', `export GOOGLE_GEMINI_BASE_URL=${u}\nexport GEMINI_API_KEY=${k}\ngemini`],
    ['~/.gemini/settings.json', 'settings.json', JSON.stringify({security: {auth: {selectedType: 'gemini-api-key'}}, privacy: {usageStatisticsEnabled: false}, telemetry: {enabled: false}}, null, 2)]],
  Cline: (u, k) => [['Shell', 'cline.sh', `cline auth -p openai -k ${k} -m claude-sonnet-4.5 -b ${u}/v1`]],
  Continue: (u, k) => [['~/.continue/config.yaml', 'config.yaml', `name: kiroproxy\nversion: 1.0.0\nschema: v1\nmodels:\n  - name: Claude via kiroproxy\n    provider: openai\n    model: claude-sonnet-4.5\n    apiBase: ${u}/v1\n    apiKey: ${k}\n    roles: [chat, edit, apply]\n`]],
  'curl / SDKs': (u, k) => [['OpenAI', 'openai.sh', `curl ${u}/v1/chat/completions -H "Authorization: Bearer ${k}" -H 'content-type: application/json' \\\n  -d '{"model": "claude-sonnet-4.5", "messages": [{"role": "user", "content": "hi"}]}'`],
    ['Anthropic', 'anthropic.sh', `curl ${u}/v1/messages -H "x-api-key: ${k}" -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \\\n  -d '{"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}]}'`],
    ['Gemini', 'gemini.sh', `curl ${u}/v1beta/models/gemini-2.5-pro:generateContent -H "x-goog-api-key: ${k}" -H 'content-type: application/json' \\\n  -d '{"contents": [{"parts": [{"text": "hi"}]}]}'`]],
};

export function render(main, ctx) {
  const base = h('input', {id: 'base-url', class: 'grow', value: location.origin, spellcheck: false});
  const key = h('input', {id: 'client-key', class: 'grow', type: 'password', autocomplete: 'off', placeholder: '$KIROPROXY_KEY'});
  const tool = ctx.query.get('tool') in SNIPPETS ? ctx.query.get('tool') : 'Claude Code';
  const out = h('div', {role: 'tabpanel', id: 'snippets'});
  const result = h('p', {role: 'status'});
  const draw = () => {
    const url = base.value.trim().replace(/\/+$/, '') || location.origin;
    out.replaceChildren(...SNIPPETS[tool](url, key.value.trim() || '$KIROPROXY_KEY').map(([title, file, text]) => h('div', null,
      h('h3', null, title), copyField(text, 'Snippet', {multiline: true}),
      h('button', {onclick: () => download(file, text, 'text/plain')}, `Download ${file}`))));
  };
  base.addEventListener('input', draw);
  key.addEventListener('input', draw);
  const check = async () => {
    result.textContent = 'Checking…';
    try {
      const models = await call('../v1/models', {withKey: key.value.trim()});
      result.textContent = `Connected: ${models.data.length} models available.`;
    } catch (e) {
      result.textContent = e.status === 401 ? 'The server refused this client key (401).'
        : e.status ? `The server answered ${e.status}: ${e.message}` : "Can't reach the server at this address.";
    }
  };
  main.append(ctx.title('Connect clients'), h('form', {class: 'card', onsubmit: (e) => { e.preventDefault(); check(); }},
    h('p', null, 'Point a client at this proxy. The address is the one this browser uses; change it if the client machine sees the server under another one.'),
    h('label', {for: 'base-url'}, 'Base URL'), base,
    h('label', {for: 'client-key'}, 'Client key (stays in this page only)'), key,
    h('div', {class: 'row'}, h('button', {type: 'submit'}, 'Check connection'), result)),
  h('div', {class: 'tabs', role: 'tablist', 'aria-label': 'Client'}, Object.keys(SNIPPETS).map((name) =>
    h('button', {role: 'tab', 'aria-selected': String(name === tool), 'aria-controls': 'snippets',
      onclick: () => ctx.go(`#/connect?tool=${encodeURIComponent(name)}`, true)}, name))), out);
  draw();
}
