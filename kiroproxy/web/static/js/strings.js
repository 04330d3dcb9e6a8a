// English words shared by several views, kept in one table so another language can follow.

export const S = {
  states: {
    active: 'Active', cooldown: 'Cooling down', unhealthy: 'Unhealthy', disabled: 'Disabled',
    suspended: 'Suspended', exhausted: 'Exhausted',
  },
  flowStates: {completed: 'Completed', error: 'Error', streaming: 'Streaming', cancelled: 'Cancelled', pending: 'Pending'},
  auth: {social: 'Social', idc: 'Identity Center', external_idp: 'External IdP', Google: 'Google', Github: 'GitHub',
    GitHub: 'GitHub', BuilderId: 'Builder ID'},
  refused: 'Your key was refused or changed. Enter the admin key again.',
  wrongKey: 'That key was refused. Check it and try again.',
  unreachable: "Can't reach the proxy",
  wrongHost: (port) => `The server refused this address. Open the page as http://127.0.0.1:${port}/ ` +
    'or add this host to the allowed hosts.',
  noAccounts: 'No accounts yet. Add your first Kiro account to start serving requests.',
  noRequests: (origin) => `No requests yet. Point a client at ${origin}.`,
  secretsLine: 'Authorization headers and tokens are never recorded.',
  working: 'Working…',
};

export function authLabel(account) {
  if (account.auth_method === 'social') return S.auth[account.provider] || account.provider || 'Social';
  if (account.auth_method === 'idc') {
    return account.start_url && !/view\.awsapps\.com\/start\/?$/.test(account.start_url) ? 'Identity Center' : 'Builder ID';
  }
  return S.auth[account.auth_method] || account.auth_method;
}
