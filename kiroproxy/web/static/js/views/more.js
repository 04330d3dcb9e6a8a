// More: the screens that do not fit the phone's tab bar.

import {h} from '../dom.js';

export function render(main, ctx) {
  main.append(ctx.title('More'), h('ul', {class: 'plain'},
    h('li', null, h('a', {class: 'button', href: '#/settings'}, 'Settings'), h('p', {class: 'muted small'}, 'Server facts, retention, configuration export and import, this browser.')),
    h('li', null, h('a', {class: 'button', href: '#/connect'}, 'Connect clients'), h('p', {class: 'muted small'}, 'Ready-to-copy setup for Claude Code, Codex, Gemini CLI, Cline, Continue and curl.')),
    h('li', null, h('a', {class: 'button', href: '#/accounts/add'}, 'Add account'), h('p', {class: 'muted small'}, 'Sign in with a code, Google or GitHub, scan this server, or paste a token file.'))));
}
