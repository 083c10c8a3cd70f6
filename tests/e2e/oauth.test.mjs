// OAuth2 authorization server, identity endpoints and service tokens, end to end: the SDK's
// full client (createManagementApiSdk) with apiBaseUrl and authBaseUrl on pgfleet, a real
// headless Chromium on the sign-in and consent pages, and the attacks the server must refuse.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after } from 'node:test';
import { createManagementApiSdk, AuthError } from '@prisma/management-api-sdk';
import { useServer } from './lib/fixture.mjs';
import { client, call, raw, expectStatus, expectError, uniq } from './lib/api.mjs';
import { expectShape, opForTemplate } from './lib/schemas.mjs';
import { sleep } from './lib/procs.mjs';
import {
  createUser, createClient, memoryStorage, launchBrowser, authorizeInBrowser,
  tokenRequest, revokeRequest, FormSession, authzParams, b64url, decodeJwt,
} from './lib/oauth.mjs';

const ACCESS_TTL = 6; // seconds: short, so expiry is tested for real
const REDIRECT = 'http://127.0.0.1:9/callback';
const S = {}; // shared state of the file
// the file's server (lib/fixture.mjs), with a short access-token lifetime
const ctx = useServer('oauth', { extraArgs: ['--access-token-ttl', String(ACCESS_TTL)], setup });
const { it } = ctx;

function sdkFor(storage, clientId = S.clientId) {
  return createManagementApiSdk({
    clientId,
    redirectUri: REDIRECT,
    tokenStorage: storage,
    apiBaseUrl: S.server.baseUrl,
    authBaseUrl: S.server.baseUrl,
  });
}

// A full login through the browser; resolves { sdk, storage, callback }.
async function login({ user = S.alice, scope = 'workspace:admin offline_access', shots } = {}) {
  const storage = memoryStorage();
  const sdk = sdkFor(storage);
  const { url, state, verifier } = await sdk.getLoginUrl({ scope });
  const callback = await authorizeInBrowser(S.browser.context, url, REDIRECT, { user, shots });
  await sdk.handleCallback({ callbackUrl: callback, expectedState: state, verifier });
  return { sdk, storage, callback };
}

// A code from the browser (already signed in), without exchanging it.
async function codeFor({ scope = 'workspace:admin offline_access' } = {}) {
  const sdk = sdkFor(memoryStorage());
  const { url, state, verifier } = await sdk.getLoginUrl({ scope });
  const callback = new URL(await authorizeInBrowser(S.browser.context, url, REDIRECT, { user: S.alice }));
  assert.equal(callback.searchParams.get('state'), state);
  return { code: callback.searchParams.get('code'), verifier, url };
}

function exchange(code, verifier, extra = {}) {
  return tokenRequest(S.server, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: S.clientId, code_verifier: verifier, ...extra });
}

// SDK client call validated against the contract.
async function sdkCall(sdk, method, template, init = {}) {
  const { data, error, response } = await sdk.client[method](template, init);
  const body = response.ok ? data : error;
  expectShape(opForTemplate(method, template), response.status, body, { what: `${method} ${template}` });
  return { status: response.status, body };
}

// useServer's before() runs this once the server is up
async function setup() {
  S.server = ctx.server;
  S.alice = await createUser(S.server, 'alice@example.com', 'alice-password-1');
  S.bob = await createUser(S.server, 'Bob@Example.com', 'bob-password-12');
  S.throttled = await createUser(S.server, 'carol@example.com', 'carol-password-1');
  S.clientId = await createClient(S.server, 'Acme Deploy Bot', REDIRECT);
  S.adminA = await S.server.token({ workspace: S.alice.workspaceId, name: 'e2e-a' });
  S.adminB = await S.server.token({ workspace: S.bob.workspaceId, name: 'e2e-b' });
  S.browser = await launchBrowser();
}

after(async () => {
  await S.browser?.close(); // the server: useServer's after()
});

it('metadata (RFC 8414) and JWKS describe the server', async () => {
  const base = S.server.baseUrl;
  const md = await (await fetch(`${base}/.well-known/oauth-authorization-server`)).json();
  assert.equal(md.issuer, base);
  assert.equal(md.authorization_endpoint, `${base}/authorize`);
  assert.equal(md.token_endpoint, `${base}/token`);
  assert.equal(md.revocation_endpoint, `${base}/revoke`);
  assert.deepEqual(md.code_challenge_methods_supported, ['S256']);
  assert.ok(md.scopes_supported.includes('workspace:admin') && md.scopes_supported.includes('offline_access'));
  const jwks = await (await fetch(md.jwks_uri)).json();
  assert.equal(jwks.keys.length, 1);
  const k = jwks.keys[0];
  assert.equal(k.kty, 'OKP');
  assert.equal(k.crv, 'Ed25519');
  assert.equal(Buffer.from(k.x, 'base64url').length, 32);
  S.jwk = k;
});

it('SDK login: getLoginUrl, Chromium signs in and consents, handleCallback, API calls', async () => {
  const { sdk, storage } = await login({ shots: 'oauth' });
  const tokens = storage.current;
  assert.equal(tokens.workspaceId, S.alice.workspaceId);
  const { header, payload } = decodeJwt(tokens.accessToken);
  assert.equal(header.alg, 'EdDSA');
  assert.equal(header.kid, S.jwk.kid);
  assert.equal(payload.workspace_id, S.alice.workspaceId);
  assert.equal(payload.sub, S.alice.userId);
  assert.equal(payload.client_id, S.clientId);
  assert.equal(payload.scope, 'workspace:admin offline_access');
  assert.equal(payload.exp - payload.iat, ACCESS_TTL);
  // the signature verifies with the published key
  const [h, p, sig] = tokens.accessToken.split('.');
  const pub = crypto.createPublicKey({ key: S.jwk, format: 'jwk' });
  assert.ok(crypto.verify(null, Buffer.from(`${h}.${p}`), pub, Buffer.from(sig, 'base64url')));

  const me = expectStatus(await sdkCall(sdk, 'GET', '/v1/me'), 200).data;
  assert.deepEqual(me.user, { id: S.alice.userId, email: 'alice@example.com', name: null });
  assert.equal(me.workspace.id, S.alice.workspaceId);
  assert.equal(me.credential.type, 'oauth');
  assert.equal(me.credential.name, 'Acme Deploy Bot');
  assert.match(me.credential.id, /^itg_/);

  const ws = expectStatus(await sdkCall(sdk, 'GET', '/v1/workspaces'), 200).data;
  assert.deepEqual(ws.map((w) => w.id), [S.alice.workspaceId]);
  const created = expectStatus(await sdkCall(sdk, 'POST', '/v1/workspaces', { body: { displayName: 'Alice Two' } }), 201).data;
  assert.equal(created.name, 'Alice Two');
  assert.match(created.id, /^wksp_/);

  const tok = expectStatus(await sdkCall(sdk, 'POST', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path: { workspaceId: S.alice.workspaceId } }, body: { name: 'made-by-oauth' } }), 201).data;
  assert.match(tok.value, /^pfs_/);
  const viaToken = expectStatus(await call(client(S.server, tok.value), 'GET', '/v1/me'), 200).data;
  assert.equal(viaToken.credential.type, 'service_token');
  assert.equal(viaToken.credential.id, tok.id);
  assert.equal(viaToken.credential.name, 'made-by-oauth');
  assert.equal(viaToken.user, null);

  const itgs = expectStatus(await sdkCall(sdk, 'GET', '/v1/workspaces/{workspaceId}/integrations', { params: { path: { workspaceId: S.alice.workspaceId } } }), 200).data;
  assert.equal(itgs.length, 1);
  assert.equal(itgs[0].client.id, S.clientId);
  assert.equal(itgs[0].client.name, 'Acme Deploy Bot');
  assert.equal(itgs[0].createdByUser.email, 'alice@example.com');
  assert.deepEqual(itgs[0].scopes, ['workspace:admin', 'offline_access']);
  S.alicePrimary = { sdk, storage };
});

it('an expired access token is refused, and the SDK refreshes it by itself', async () => {
  const { sdk, storage } = S.alicePrimary;
  const before_ = { ...storage.current };
  await sleep((ACCESS_TTL + 1) * 1000);
  const expired = await raw(S.server, 'GET', '/v1/me', { token: before_.accessToken });
  expectError(expired, 401);
  assert.match(expired.body.error.message, /expired/);
  // the SDK gets the 401, refreshes (rotating the refresh token) and retries
  const me = expectStatus(await sdkCall(sdk, 'GET', '/v1/me'), 200).data;
  assert.equal(me.user.id, S.alice.userId);
  const now = storage.current;
  assert.notEqual(now.accessToken, before_.accessToken);
  assert.notEqual(now.refreshToken, before_.refreshToken);
  S.rotatedAway = before_.refreshToken;
});

it('reusing a rotated refresh token fails and revokes the whole chain', async () => {
  const { sdk, storage } = S.alicePrimary;
  const live = { ...storage.current };
  expectStatus(await raw(S.server, 'GET', '/v1/me', { token: live.accessToken }), 200);
  const reuse = await tokenRequest(S.server, { grant_type: 'refresh_token', refresh_token: S.rotatedAway, client_id: S.clientId });
  assert.equal(reuse.status, 400);
  assert.equal(reuse.body.error, 'invalid_grant');
  assert.equal(reuse.headers.get('cache-control'), 'no-store');
  // the chain is dead: the live access token and the live refresh token
  expectError(await raw(S.server, 'GET', '/v1/me', { token: live.accessToken }), 401);
  const next = await tokenRequest(S.server, { grant_type: 'refresh_token', refresh_token: live.refreshToken, client_id: S.clientId });
  assert.equal(next.status, 400);
  assert.equal(next.body.error, 'invalid_grant');
  // and the SDK gives up with an AuthError, clearing its tokens
  await assert.rejects(sdk.client.GET('/v1/me'), (e) => e instanceof AuthError && e.refreshTokenInvalid === true);
  assert.equal(storage.current, null);
});

it('PKCE: a wrong verifier is refused and burns the code; a reused code revokes its tokens', async () => {
  const a = await codeFor();
  const wrong = await exchange(a.code, b64url(crypto.randomBytes(32)));
  assert.equal(wrong.status, 400);
  assert.equal(wrong.body.error, 'invalid_grant');
  assert.match(wrong.body.error_description, /code_verifier/);
  const late = await exchange(a.code, a.verifier);
  assert.equal(late.status, 400, 'a code is single-use even when the first try failed');
  const noVerifier = await exchange((await codeFor()).code, '');
  assert.equal(noVerifier.status, 400);
  assert.equal(noVerifier.body.error, 'invalid_request');

  const b = await codeFor();
  const ok = await exchange(b.code, b.verifier);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.token_type, 'Bearer');
  assert.equal(ok.body.expires_in, ACCESS_TTL);
  assert.equal(ok.body.scope, 'workspace:admin offline_access');
  assert.equal(typeof ok.body.refresh_token, 'string');
  expectStatus(await raw(S.server, 'GET', '/v1/me', { token: ok.body.access_token }), 200);
  const again = await exchange(b.code, b.verifier);
  assert.equal(again.status, 400);
  assert.equal(again.body.error, 'invalid_grant');
  expectError(await raw(S.server, 'GET', '/v1/me', { token: ok.body.access_token }), 401);
  const r = await tokenRequest(S.server, { grant_type: 'refresh_token', refresh_token: ok.body.refresh_token, client_id: S.clientId });
  assert.equal(r.status, 400);

  const c = await codeFor();
  const otherUri = await exchange(c.code, c.verifier, { redirect_uri: 'http://127.0.0.1:9/other' });
  assert.equal(otherUri.status, 400);
  assert.equal(otherUri.body.error, 'invalid_grant');
  const unknownClient = await exchange('pfc_nope', c.verifier, { client_id: 'cli_nope' });
  assert.equal(unknownClient.status, 401);
  assert.equal(unknownClient.body.error, 'invalid_client');
  const badGrant = await tokenRequest(S.server, { grant_type: 'password', username: 'a', password: 'b' });
  assert.equal(badGrant.status, 400);
  assert.equal(badGrant.body.error, 'unsupported_grant_type');
});

it('authorize: a foreign redirect URI gets an error page, never a redirect; bad requests go back with error', async () => {
  const sdk = sdkFor(memoryStorage());
  const { url } = await sdk.getLoginUrl({ scope: 'workspace:admin offline_access' });
  const evil = new URL(url);
  evil.searchParams.set('redirect_uri', 'http://evil.example/callback');
  const page = await S.browser.context.newPage();
  let leaked = false;
  await page.route('http://evil.example/**', (route) => { leaked = true; return route.abort(); });
  const resp = await page.goto(evil.toString());
  assert.equal(resp.status(), 400);
  assert.match(await page.textContent('h1'), /Invalid redirect URI/);
  assert.equal(leaked, false);
  await page.close();
  // prefix of a registered URI is not a match either
  const prefix = new URL(url);
  prefix.searchParams.set('redirect_uri', `${REDIRECT}/x`);
  assert.equal((await fetch(prefix, { redirect: 'manual' })).status, 400);
  const unknown = new URL(url);
  unknown.searchParams.set('client_id', 'cli_unknown');
  assert.equal((await fetch(unknown, { redirect: 'manual' })).status, 400);

  // request data reflected in the page (state, in a hidden field) is escaped
  const xss = new URL(url);
  xss.searchParams.set('state', '"><script>alert(1)</script>');
  const page2 = await fetch(xss);
  const html = await page2.text();
  assert.equal(page2.status, 200);
  assert.ok(!html.includes('<script>'), 'unescaped state in the page');
  assert.ok(html.includes('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.match(page2.headers.get('content-security-policy'), /default-src 'none'/);
  assert.equal(page2.headers.get('x-frame-options'), 'DENY');

  const cases = [
    ['code_challenge_method', 'plain', 'invalid_request'],
    ['code_challenge', '', 'invalid_request'],
    ['response_type', 'token', 'unsupported_response_type'],
    ['scope', 'workspace:admin root', 'invalid_scope'],
  ];
  for (const [k, v, want] of cases) {
    const u = new URL(url);
    u.searchParams.set(k, v);
    const r = await fetch(u, { redirect: 'manual' });
    assert.equal(r.status, 302, `${k}=${v}`);
    const loc = new URL(r.headers.get('location'));
    assert.equal(`${loc.origin}${loc.pathname}`, REDIRECT);
    assert.equal(loc.searchParams.get('error'), want, `${k}=${v}`);
    assert.ok(loc.searchParams.get('error_description'));
    assert.equal(loc.searchParams.get('state'), u.searchParams.get('state'));
  }
});

it('consent denied: the callback carries access_denied and handleCallback throws', async () => {
  const sdk = sdkFor(memoryStorage());
  const { url, state, verifier } = await sdk.getLoginUrl({ scope: 'workspace:admin offline_access' });
  const cb = await authorizeInBrowser(S.browser.context, url, REDIRECT, { user: S.alice, decision: 'deny' });
  assert.equal(new URL(cb).searchParams.get('error'), 'access_denied');
  await assert.rejects(sdk.handleCallback({ callbackUrl: cb, expectedState: state, verifier }), AuthError);
});

it('sign-in: wrong password refused, repeated failures slowed down with 429 + Retry-After, CSRF checked', async () => {
  const sdk = sdkFor(memoryStorage());
  const { url } = await sdk.getLoginUrl({ scope: 'workspace:admin offline_access' });
  const params = authzParams(url);
  const s = new FormSession(S.server);
  const first = await s.get(`/authorize?${new URLSearchParams(params)}`);
  assert.equal(first.status, 200);
  assert.match(first.html, /<form method="post" action="\/login" id="signin">/);
  assert.ok(s.csrf && s.cookies.has('pgfleet_csrf'));

  const noCsrf = await s.post('/login', { ...params, email: S.throttled.email, password: S.throttled.password });
  assert.equal(noCsrf.status, 403, 'a sign-in without the CSRF field');
  const forged = await s.post('/login', { ...params, csrf: 'A'.repeat(43), email: S.throttled.email, password: S.throttled.password });
  assert.equal(forged.status, 403);

  const unknown = await s.post('/login', { ...params, csrf: s.csrf, email: 'nobody@example.com', password: 'whatever-1' });
  assert.equal(unknown.status, 401);
  for (let i = 0; i < 3; i++) {
    const r = await s.post('/login', { ...params, csrf: s.csrf, email: S.throttled.email, password: `wrong-${i}` });
    assert.equal(r.status, 401, `failure ${i + 1}`);
    assert.match(r.html, /Wrong email or password/);
    assert.equal(r.headers.get('location'), null);
  }
  // now even the right password must wait
  const t0 = Date.now();
  const slowed = await s.post('/login', { ...params, csrf: s.csrf, email: 'CAROL@example.com', password: S.throttled.password });
  assert.equal(slowed.status, 429);
  const wait = Number(slowed.headers.get('retry-after'));
  assert.ok(wait >= 1, `Retry-After ${slowed.headers.get('retry-after')}`);
  assert.ok(Date.now() - t0 < 2000, 'the server answers at once instead of holding the request');
  // other users are not slowed
  const s2 = new FormSession(S.server);
  await s2.get(`/authorize?${new URLSearchParams(params)}`);
  const bob = await s2.post('/login', { ...params, csrf: s2.csrf, email: 'bob@example.com', password: S.bob.password });
  assert.equal(bob.status, 303, `bob: ${bob.status}`);
  await sleep(wait * 1000 + 200);
  const ok = await s.post('/login', { ...params, csrf: s.csrf, email: S.throttled.email, password: S.throttled.password });
  assert.equal(ok.status, 303);
  assert.match(ok.headers.get('location'), /^\/authorize\?/);
  assert.ok(s.cookies.has('pgfleet_session'));
  // the consent form is CSRF-protected too
  const consent = await s.get(ok.headers.get('location'));
  assert.match(consent.html, /id="consent"/);
  const post = await s.post('/authorize', { ...params, csrf: 'x', decision: 'allow', workspace_id: S.throttled.workspaceId });
  assert.equal(post.status, 403);
  assert.equal(post.headers.get('location'), null);
  // and a workspace the user does not belong to is refused
  const foreign = await s.post('/authorize', { ...params, csrf: s.csrf, decision: 'allow', workspace_id: S.alice.workspaceId });
  assert.equal(foreign.status, 400);
});

it('workspace isolation: a token from workspace A sees nothing of workspace B', async () => {
  const cB = client(S.server, S.adminB);
  const projB = expectStatus(await call(cB, 'POST', '/v1/projects', { body: { name: uniq('oauth-b') } }), 201).data;
  const tokB = expectStatus(await call(cB, 'POST', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path: { workspaceId: S.bob.workspaceId } }, body: { name: 'b-token' } }), 201).data;
  // signed in last: the access token lives ACCESS_TTL seconds, B's setup is not in them
  const { storage } = await login();
  const at = storage.current.accessToken;
  const a = client(S.server, at);
  const wsB = S.bob.workspaceId;
  expectError(await call(a, 'GET', '/v1/projects/{id}', { params: { path: { id: projB.id } } }), 404);
  expectError(await call(a, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: projB.database.id } } }), 404);
  expectError(await call(a, 'DELETE', '/v1/projects/{id}', { params: { path: { id: projB.id } } }), 404);
  expectError(await call(a, 'GET', '/v1/workspaces/{id}', { params: { path: { id: wsB } } }), 404);
  const list = expectStatus(await call(a, 'GET', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path: { workspaceId: wsB } } }), 200);
  assert.deepEqual(list.data, []);
  expectError(await call(a, 'POST', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path: { workspaceId: wsB } }, body: { name: 'x' } }), 404);
  expectError(await call(a, 'DELETE', '/v1/workspaces/{workspaceId}/service-tokens/{serviceTokenId}', { params: { path: { workspaceId: wsB, serviceTokenId: tokB.id } } }), 404);
  expectError(await call(a, 'DELETE', '/v1/workspaces/{workspaceId}/service-tokens/{serviceTokenId}', { params: { path: { workspaceId: S.alice.workspaceId, serviceTokenId: tokB.id } } }), 404);
  expectError(await call(a, 'GET', '/v1/workspaces/{workspaceId}/integrations', { params: { path: { workspaceId: wsB } } }), 404);
  expectError(await call(a, 'DELETE', '/v1/workspaces/{workspaceId}/integrations/{clientId}', { params: { path: { workspaceId: wsB, clientId: S.clientId } } }), 404);
  const foreignList = expectStatus(await call(a, 'GET', '/v1/integrations', { params: { query: { workspaceId: wsB } } }), 200);
  assert.deepEqual(foreignList.data, []);
  const own = expectStatus(await call(a, 'GET', '/v1/integrations', { params: { query: { workspaceId: S.alice.workspaceId } } }), 200);
  assert.equal(own.data.length, 1);
  // B's token still works: nothing was deleted
  expectStatus(await call(client(S.server, tokB.value), 'GET', '/v1/projects/{id}', { params: { path: { id: projB.id } } }), 200);
});

it('scopes are enforced: without workspace:admin a token can read but not change anything', async () => {
  const { sdk, storage } = await login({ scope: 'offline_access' });
  assert.equal(decodeJwt(storage.current.accessToken).payload.scope, 'offline_access');
  expectStatus(await sdkCall(sdk, 'GET', '/v1/me'), 200);
  expectStatus(await sdkCall(sdk, 'GET', '/v1/projects'), 200);
  const ws = S.alice.workspaceId;
  for (const [m, t, init] of [
    ['POST', '/v1/projects', { body: { name: 'nope' } }],
    ['POST', '/v1/workspaces', { body: { displayName: 'nope' } }],
    ['POST', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path: { workspaceId: ws } }, body: { name: 'nope' } }],
    ['DELETE', '/v1/workspaces/{workspaceId}/integrations/{clientId}', { params: { path: { workspaceId: ws, clientId: S.clientId } } }],
  ]) {
    const r = await sdkCall(sdk, m, t, init);
    assert.equal(r.status, 403, `${m} ${t}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.hint, 'scope');
  }
});

it('forged, alg:none and foreign-key JWTs are refused', async () => {
  const { storage } = await login();
  const good = storage.current.accessToken;
  const [h, p, sig] = good.split('.');
  expectStatus(await raw(S.server, 'GET', '/v1/me', { token: good }), 200);
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  const enc = (o) => b64url(Buffer.from(JSON.stringify(o)));
  const other = { ...payload, workspace_id: S.bob.workspaceId };
  const attempts = {
    'payload changed, signature kept': `${h}.${enc(other)}.${sig}`,
    'alg none, no signature': `${enc({ alg: 'none', typ: 'JWT' })}.${enc(other)}.`,
    'alg none, old signature': `${enc({ alg: 'none', typ: 'JWT', kid: S.jwk.kid })}.${enc(other)}.${sig}`,
    'HS256 with the public key as secret': (() => {
      const hh = enc({ alg: 'HS256', typ: 'JWT', kid: S.jwk.kid });
      const mac = crypto.createHmac('sha256', Buffer.from(S.jwk.x, 'base64url')).update(`${hh}.${enc(other)}`).digest();
      return `${hh}.${enc(other)}.${b64url(mac)}`;
    })(),
    'signed by another Ed25519 key with our kid': (() => {
      const { privateKey } = crypto.generateKeyPairSync('ed25519');
      const input = `${h}.${enc(other)}`;
      return `${input}.${b64url(crypto.sign(null, Buffer.from(input), privateKey))}`;
    })(),
    'signature truncated': `${h}.${p}.${sig.slice(0, -4)}`,
  };
  for (const [what, t] of Object.entries(attempts)) {
    const r = await raw(S.server, 'GET', '/v1/me', { token: t });
    assert.equal(r.status, 401, `${what}: ${r.status} ${r.text}`);
    const w = await raw(S.server, 'GET', `/v1/workspaces/${S.bob.workspaceId}`, { token: t });
    assert.equal(w.status, 401, `${what} on workspace B`);
  }
  // a genuinely signed but expired token
  await sleep((ACCESS_TTL + 1) * 1000);
  const expired = await raw(S.server, 'GET', '/v1/me', { token: good });
  expectError(expired, 401);
  assert.match(expired.body.error.message, /expired/);
});

it('service tokens: value shown once, valueHint after, expiry, deletion revokes at once', async () => {
  const c = client(S.server, S.adminA);
  const ws = S.alice.workspaceId;
  const path = { workspaceId: ws };
  const made = expectStatus(await call(c, 'POST', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path }, body: { name: 'ci' } }), 201).data;
  assert.equal(made.type, 'serviceToken');
  assert.match(made.value, /^pfs_/);
  assert.ok(made.value.endsWith(made.valueHint.replace(/^\.\.\./, '')));
  const listed = expectStatus(await call(c, 'GET', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path } }), 200).data;
  assert.equal(listed[0].id, made.id, 'newest first');
  assert.equal(listed[0].valueHint, made.valueHint);
  assert.ok(listed.every((t) => !('value' in t)));
  assert.equal(listed[0].expiresAt, null);
  const page1 = await call(c, 'GET', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path, query: { limit: 1 } } });
  assert.equal(page1.body.data.length, 1);
  assert.equal(page1.body.pagination.hasMore, true);
  const page2 = await call(c, 'GET', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path, query: { limit: 1, cursor: page1.body.pagination.nextCursor } } });
  assert.notEqual(page2.body.data[0].id, made.id);

  const mine = client(S.server, made.value);
  expectStatus(await call(mine, 'GET', '/v1/projects'), 200);
  expectError(await call(mine, 'POST', '/v1/workspaces', { body: { displayName: 'no' } }), 403);
  expectStatus(await call(c, 'DELETE', '/v1/workspaces/{workspaceId}/service-tokens/{serviceTokenId}', { params: { path: { workspaceId: ws, serviceTokenId: made.id } } }), 204);
  expectError(await call(mine, 'GET', '/v1/projects'), 401);
  expectError(await call(c, 'DELETE', '/v1/workspaces/{workspaceId}/service-tokens/{serviceTokenId}', { params: { path: { workspaceId: ws, serviceTokenId: made.id } } }), 404);

  const soon = new Date(Date.now() + 2500).toISOString();
  const exp = expectStatus(await call(c, 'POST', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path }, body: { name: 'short', expiresAt: soon } }), 201).data;
  assert.equal(exp.expiresAt, soon);
  expectStatus(await call(client(S.server, exp.value), 'GET', '/v1/projects'), 200);
  await sleep(3000);
  expectError(await call(client(S.server, exp.value), 'GET', '/v1/projects'), 401);

  expectError(await call(c, 'POST', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path }, body: {} }), 422, { field: 'name' });
  expectError(await call(c, 'POST', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path }, body: { name: 'x', expiresAt: '2001-01-01T00:00:00Z' } }), 422, { field: 'expiresAt' });
  expectError(await call(c, 'POST', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path }, body: { name: 'x', expiresAt: 'tomorrow' } }), 422, { field: 'expiresAt' });
});

it('revocation: /revoke and deleting an integration end the tokens at once', async () => {
  const one = await login();
  const t1 = { ...one.storage.current };
  assert.equal(await revokeRequest(S.server, { token: t1.refreshToken, client_id: S.clientId }), 200);
  expectError(await raw(S.server, 'GET', '/v1/me', { token: t1.accessToken }), 401);
  assert.equal(await revokeRequest(S.server, { token: 'pfr_unknown', client_id: S.clientId }), 200);

  const two = await login();
  const t2 = { ...two.storage.current };
  const c = client(S.server, S.adminA);
  const me = expectStatus(await raw(S.server, 'GET', '/v1/me', { token: t2.accessToken }), 200).data;
  const itgId = me.credential.id;
  expectStatus(await call(c, 'GET', '/v1/integrations/{id}', { params: { path: { id: itgId } } }), 200);
  expectStatus(await call(c, 'DELETE', '/v1/workspaces/{workspaceId}/integrations/{clientId}', { params: { path: { workspaceId: S.alice.workspaceId, clientId: S.clientId } } }), 204);
  expectError(await raw(S.server, 'GET', '/v1/me', { token: t2.accessToken }), 401);
  const r = await tokenRequest(S.server, { grant_type: 'refresh_token', refresh_token: t2.refreshToken, client_id: S.clientId });
  assert.equal(r.body.error, 'invalid_grant');
  expectError(await call(c, 'GET', '/v1/integrations/{id}', { params: { path: { id: itgId } } }), 404);

  const three = await login();
  const t3 = { ...three.storage.current };
  const id3 = expectStatus(await raw(S.server, 'GET', '/v1/me', { token: t3.accessToken }), 200).data.credential.id;
  expectStatus(await call(c, 'DELETE', '/v1/integrations/{id}', { params: { path: { id: id3 } } }), 204);
  expectError(await raw(S.server, 'GET', '/v1/me', { token: t3.accessToken }), 401);
  expectError(await call(c, 'DELETE', '/v1/integrations/{id}', { params: { path: { id: id3 } } }), 404);
});

ctx.itShutsDownCleanly();
