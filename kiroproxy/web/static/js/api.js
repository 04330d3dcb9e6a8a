// The admin API: document-relative URLs, the admin key as a bearer header only, typed errors.
// Hooks (set by app.js) hear about a refused key, an unreachable server and the Host guard.

const KEY = 'kiroproxy.adminKey';
export const hooks = {refused: () => {}, unreachable: () => {}, reachable: () => {}, wrongHost: () => {}};

export class ApiError extends Error {
  constructor(message, status, kind, body) {
    super(message);
    this.status = status;
    this.kind = kind;
    this.body = body;
  }
}

export function key() {
  return localStorage.getItem(KEY) || sessionStorage.getItem(KEY) || '';
}

export function saveKey(value, remember) {
  forgetKey();
  (remember ? localStorage : sessionStorage).setItem(KEY, value);
}

export function forgetKey() {
  localStorage.removeItem(KEY);
  sessionStorage.removeItem(KEY);
}

export async function call(path, {method = 'GET', body, raw = false, timeout = 30000, withKey, signal} = {}) {
  const headers = {Authorization: `Bearer ${withKey !== undefined ? withKey : key()}`};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeout);
  if (signal) signal.addEventListener('abort', () => abort.abort());
  let response;
  try {
    response = await fetch(`api/${path}`, {method, headers, signal: abort.signal, cache: 'no-store',
      credentials: 'omit', body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (error) {
    if (signal && signal.aborted) throw error;
    hooks.unreachable();
    throw new ApiError(abort.signal.aborted ? 'the server did not answer in time' : "can't reach the proxy", 0, 'unreachable');
  } finally {
    clearTimeout(timer);
  }
  hooks.reachable();
  if (response.ok) return raw ? response.text() : response.json();
  let data = null;
  try { data = await response.json(); } catch (e) { /* not JSON */ }
  const err = (data && data.error) || {};
  const message = err.message || `${response.status} ${response.statusText}`;
  const error = new ApiError(message, response.status, err.type, data);
  if (response.status === 401 && withKey === undefined) { error.handled = true; hooks.refused(); }
  if (response.status === 421) { error.handled = true; hooks.wrongHost(message); }
  throw error;
}

const q = (params) => {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== '' && v !== null && v !== undefined) search.set(k, v);
  const text = search.toString();
  return text ? `?${text}` : '';
};
const enc = encodeURIComponent;

export const api = {
  status: (opts) => call('status', opts),
  accounts: () => call('accounts'),
  account: (id) => call(`accounts/${enc(id)}`),
  addAccount: (body) => call('accounts', {method: 'POST', body}),
  patchAccount: (id, body) => call(`accounts/${enc(id)}`, {method: 'PATCH', body}),
  deleteAccount: (id) => call(`accounts/${enc(id)}`, {method: 'DELETE'}),
  toggle: (id, enabled) => call(`accounts/${enc(id)}/toggle`, {method: 'POST', body: {enabled}}),
  refresh: (id) => call(`accounts/${enc(id)}/refresh`, {method: 'POST', body: {}}),
  restore: (id) => call(`accounts/${enc(id)}/restore`, {method: 'POST', body: {}}),
  usage: (id) => call(`accounts/${enc(id)}/usage`),
  refreshAll: () => call('accounts/refresh-all', {method: 'POST', body: {}, timeout: 120000}),
  refreshCheck: () => call('token/refresh-check', {method: 'POST', body: {}, timeout: 120000}),
  quota: () => call('quota', {timeout: 60000}),
  scan: () => call('token/scan'),
  addFromScan: (path) => call('token/add-from-scan', {method: 'POST', body: {path}}),
  deviceStart: (body) => call('kiro/login/start', {method: 'POST', body}),
  devicePoll: (id) => call(`kiro/login/poll${q({id})}`),
  deviceCancel: (id) => call('kiro/login/cancel', {method: 'POST', body: {id}}),
  socialStart: (provider) => call('kiro/social/start', {method: 'POST', body: {provider}}),
  socialExchange: (body) => call('kiro/social/exchange', {method: 'POST', body}),
  flows: (params) => call(`flows${q(params)}`),
  flowStats: (params) => call(`flows/stats${q(params)}`),
  flow: (id) => call(`flows/${enc(id)}`),
  mark: (id, body) => call(`flows/${enc(id)}/bookmark`, {method: 'POST', body}),
  exportFlows: (body) => call('flows/export', {method: 'POST', body, raw: true, timeout: 120000}),
  logs: (params) => call(`logs${q(params)}`, {raw: params.format === 'text'}),
  stats: () => call('stats'),
  statsDetailed: () => call('stats/detailed'),
  exportConfig: (secrets) => call(`config/export${secrets ? '?include_secrets=true' : ''}`, {raw: true}),
  importConfig: (body) => call('config/import', {method: 'POST', body}),
  keys: () => call('keys'),
  addKey: (body) => call('keys', {method: 'POST', body}),
  deleteKey: (id) => call(`keys/${enc(id)}`, {method: 'DELETE'}),
};
