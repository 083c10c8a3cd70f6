// The console's credential and its calls to the /v1 API.
//
// A credential is either an OAuth sign-in of the built-in client `cli_console` (authorization
// code with PKCE through the server's own sign-in pages; callback /console/callback) or a
// pasted service token. It is kept in sessionStorage (this tab only, gone when the tab
// closes), never in a cookie, so no other site can ride it. Refresh tokens rotate on use and
// a reused one revokes the sign-in, so refreshes are made one at a time (one promise).

export const CLIENT_ID = 'cli_console';
const AUTH_KEY = 'pgfleet.console.auth';
const PENDING_KEY = 'pgfleet.console.signin';
const SCOPE = 'workspace:admin offline_access';

export class ApiError extends Error {
  constructor(status, code, message, hint) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
    this.hint = hint || '';
  }
}

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(AUTH_KEY) || 'null');
  } catch {
    return null;
  }
}

let auth = load();

function save(a) {
  auth = a;
  if (a) sessionStorage.setItem(AUTH_KEY, JSON.stringify(a));
  else sessionStorage.removeItem(AUTH_KEY);
}

export function credential() {
  return auth;
}

export function usePastedToken(value) {
  const v = value.trim();
  if (!/^[A-Za-z0-9_.-]{8,}$/.test(v)) throw new Error('That does not look like a token (pfs_… or an access token).');
  save({ kind: 'token', access: v });
}

function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

let metaPromise = null;
// RFC 8414 metadata: its issuer is the server's public URL, the base of the redirect URI the
// server registered for this client.
export function metadata() {
  if (!metaPromise) {
    metaPromise = fetch('/.well-known/oauth-authorization-server').then(async (r) => {
      if (!r.ok) throw new ApiError(r.status, 'NoOAuth', 'This server does not offer OAuth sign-in; paste a service token instead.');
      return r.json();
    });
    metaPromise.catch(() => { metaPromise = null; });
  }
  return metaPromise;
}

export async function redirectUri() {
  const m = await metadata();
  return `${m.issuer.replace(/\/+$/, '')}/console/callback`;
}

// The issuer's origin, when the console was opened at another one (the sign-in would come
// back there, where this tab's verifier is not).
export async function foreignIssuer() {
  const m = await metadata();
  const o = new URL(m.issuer).origin;
  return o === location.origin ? null : o;
}

export async function startSignIn(returnTo) {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state, returnTo }));
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: await redirectUri(),
    scope: SCOPE,
    state,
    code_challenge: b64url(new Uint8Array(digest)),
    code_challenge_method: 'S256',
  });
  location.assign(`/authorize?${q}`);
}

async function tokenCall(params) {
  const r = await fetch('/token', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
  const b = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, b.error, b.error_description || b.error || `HTTP ${r.status}`);
  return b;
}

function fromTokenSet(b) {
  return { kind: 'oauth', access: b.access_token, refresh: b.refresh_token, exp: Date.now() + (b.expires_in || 0) * 1000 };
}

// On /console/callback: checks state, exchanges the code with the verifier, returns where to go.
export async function finishSignIn() {
  const q = new URLSearchParams(location.search);
  let pending = null;
  try { pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || 'null'); } catch { /* none */ }
  sessionStorage.removeItem(PENDING_KEY);
  if (q.get('error')) throw new ApiError(400, q.get('error'), `Sign-in did not complete: ${q.get('error_description') || q.get('error')}`);
  if (!pending || !q.get('state') || q.get('state') !== pending.state) {
    throw new ApiError(400, 'state', 'This sign-in answer was not started from this tab (state mismatch); sign in again.');
  }
  const b = await tokenCall({
    grant_type: 'authorization_code',
    code: q.get('code') || '',
    redirect_uri: await redirectUri(),
    client_id: CLIENT_ID,
    code_verifier: pending.verifier,
  });
  save(fromTokenSet(b));
  return pending.returnTo || '#/projects';
}

let refreshing = null;
function refresh() {
  if (!refreshing) {
    const a = auth;
    refreshing = tokenCall({ grant_type: 'refresh_token', refresh_token: a.refresh, client_id: CLIENT_ID })
      .then((b) => { save(fromTokenSet(b)); })
      .catch((e) => { save(null); throw e; })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

export async function signOut() {
  const a = auth;
  save(null);
  if (a && a.kind === 'oauth' && a.refresh) {
    await fetch('/revoke', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: a.refresh, client_id: CLIENT_ID }),
    }).catch(() => {});
  }
}

let onSignedOut = () => {};
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

// One API call: resolves the parsed body (null for 204), throws ApiError with the envelope's
// code, message and hint.
export async function api(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    if (!auth) {
      onSignedOut();
      throw new ApiError(401, 'Unauthorized', 'Not signed in');
    }
    if (attempt === 0 && auth.kind === 'oauth' && auth.refresh && auth.exp && Date.now() > auth.exp - 30000) {
      await refresh().catch(() => {});
      continue;
    }
    const headers = { authorization: `Bearer ${auth.access}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401 && auth && auth.kind === 'oauth' && auth.refresh && attempt === 0) {
      await refresh().catch(() => {});
      continue;
    }
    if (r.status === 204) return null;
    const text = await r.text();
    let j = null;
    try { j = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (!r.ok) {
      const err = j && j.error ? j.error : {};
      if (r.status === 401) {
        save(null);
        onSignedOut();
      }
      throw new ApiError(r.status, err.code, err.message || `HTTP ${r.status}`, err.hint);
    }
    return j;
  }
}
