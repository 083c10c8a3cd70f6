// OAuth test helpers (the server is lib/fixture.mjs's useServer): users and OAuth clients
// made with the CLI, a headless Chromium (Debian's, driven by playwright-core) that signs in
// and consents on the real pages, and raw /token, /revoke and form calls.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';
import { BIN, SANITIZER_ENV, repoRoot } from './server.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const ARTIFACTS = path.join(repoRoot, 'tests/e2e/artifacts');

// Runs the CLI with `input` on stdin; resolves with the non-empty stdout lines.
export function cliLines(args, input = '') {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: { ...process.env, ...SANITIZER_ENV }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`pgfleet ${args.join(' ')} exited ${code}: ${err}`));
      if (/Sanitizer|runtime error: /.test(err)) return reject(new Error(`sanitizer report: ${err}`));
      resolve(out.split('\n').map((l) => l.trim()).filter(Boolean));
    });
    child.stdin.end(input);
  });
}

// A user with a password read from stdin and a new workspace (or `workspace`).
export async function createUser(server, email, password, { workspace } = {}) {
  const args = ['user', 'create', '--home', server.home, '--email', email];
  if (workspace) args.push('--workspace', workspace);
  const [userId, workspaceId] = await cliLines(args, `${password}\n`);
  assert.match(userId, /^usr_/);
  assert.match(workspaceId, /^wksp_/);
  return { userId, workspaceId, email, password };
}

export async function createClient(server, name, redirectUri) {
  const lines = await cliLines(['oauth-client', 'create', '--home', server.home, '--name', name, '--redirect-uri', redirectUri]);
  assert.match(lines.at(-1), /^cli_/);
  return lines.at(-1);
}

// In-memory token storage for createManagementApiSdk.
export function memoryStorage() {
  let tokens = null;
  return {
    async getTokens() { return tokens; },
    async setTokens(t) { tokens = t; },
    async clearTokens() { tokens = null; },
    get current() { return tokens; },
  };
}

export async function launchBrowser() {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} missing (apt-get install chromium)`);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgfleet-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1100, height: 820 },
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot: ${file}`);
  return file;
}

// Opens loginUrl in the browser and walks the pages: signs in when the sign-in page shows
// (with `user`), then on the consent page clicks `decision` ('allow' or 'deny'). Requests
// to redirectUri are captured (never sent). Resolves with the callback URL.
export async function authorizeInBrowser(context, loginUrl, redirectUri, { user, decision = 'allow', shots } = {}) {
  const page = await context.newPage();
  let callback = null;
  await page.route((u) => u.href.startsWith(redirectUri), async (route) => {
    callback = route.request().url();
    await route.fulfill({ status: 200, contentType: 'text/plain', body: 'callback received' });
  });
  try {
    const first = await page.goto(loginUrl);
    if (first.status() !== 200) assert.fail(`GET /authorize: ${first.status()} ${await first.text()}`);
    if (await page.locator('form#signin').count()) {
      assert.ok(user, 'the sign-in page showed but no user was given');
      if (shots) await screenshot(page, `${shots}-signin`);
      await page.fill('#email', user.email);
      await page.fill('#password', user.password);
      await Promise.all([page.waitForLoadState('load'), page.click('form#signin button[type=submit]')]);
    }
    await page.waitForSelector('form#consent', { timeout: 15000 });
    if (shots) await screenshot(page, `${shots}-consent`);
    await page.click(`form#consent button[value=${decision}]`);
    for (let i = 0; i < 100 && !callback; i++) await page.waitForTimeout(50);
    if (!callback) assert.fail(`no redirect to ${redirectUri}; page: ${(await page.content()).slice(0, 800)}`);
    return callback;
  } finally {
    await page.close();
  }
}

// POST /token (form); resolves { status, body, headers }.
export async function tokenRequest(server, params) {
  const r = await fetch(`${server.baseUrl}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
  return { status: r.status, body: await r.json(), headers: r.headers };
}

export async function revokeRequest(server, params) {
  const r = await fetch(`${server.baseUrl}/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
  await r.arrayBuffer();
  return r.status;
}

// A cookie jar for driving the HTML forms with fetch (no redirects followed).
export class FormSession {
  constructor(server) {
    this.server = server;
    this.cookies = new Map();
  }

  absorb(r) {
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      this.cookies.set(pair.slice(0, i), pair.slice(i + 1));
    }
  }

  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async get(urlPath) {
    const r = await fetch(this.server.baseUrl + urlPath, { headers: { cookie: this.header() }, redirect: 'manual' });
    this.absorb(r);
    const html = await r.text();
    const m = /name="csrf" value="([^"]+)"/.exec(html);
    if (m) this.csrf = m[1];
    return { status: r.status, html, headers: r.headers };
  }

  async post(urlPath, fields) {
    const r = await fetch(this.server.baseUrl + urlPath, {
      method: 'POST',
      headers: { cookie: this.header(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields),
      redirect: 'manual',
    });
    this.absorb(r);
    const html = await r.text();
    const m = /name="csrf" value="([^"]+)"/.exec(html);
    if (m) this.csrf = m[1];
    return { status: r.status, html, headers: r.headers };
  }
}

// The authorization request parameters of a login URL, as an object.
export function authzParams(loginUrl) {
  return Object.fromEntries(new URL(loginUrl).searchParams);
}

export function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

export function decodeJwt(t) {
  const [h, p] = t.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

// An OAuth sign-in without a browser: the authorization request of the real SDK, the sign-in
// and consent forms driven with fetch (FormSession), the code exchanged by the SDK. Resolves
// the SDK's stored tokens { workspaceId, accessToken, refreshToken }.
export async function formLogin(server, { clientId, redirectUri, user, scope = 'workspace:admin offline_access' }) {
  const { createManagementApiSdk } = await import('@prisma/management-api-sdk');
  const storage = memoryStorage();
  const sdk = createManagementApiSdk({ clientId, redirectUri, tokenStorage: storage, apiBaseUrl: server.baseUrl, authBaseUrl: server.baseUrl });
  const { url, state, verifier } = await sdk.getLoginUrl({ scope });
  const params = authzParams(url);
  const s = new FormSession(server);
  const first = await s.get(`/authorize?${new URLSearchParams(params)}`);
  assert.equal(first.status, 200, `GET /authorize: ${first.status}`);
  const signedIn = await s.post('/login', { ...params, csrf: s.csrf, email: user.email, password: user.password });
  assert.equal(signedIn.status, 303, `POST /login: ${signedIn.status}`);
  const consent = await s.get(signedIn.headers.get('location'));
  assert.equal(consent.status, 200, `consent page: ${consent.status}`);
  const allowed = await s.post('/authorize', { ...params, csrf: s.csrf, decision: 'allow', workspace_id: user.workspaceId });
  assert.equal(allowed.status, 303, `POST /authorize: ${allowed.status}`);
  const callbackUrl = allowed.headers.get('location');
  assert.ok(callbackUrl.startsWith(redirectUri), `callback ${callbackUrl}`);
  await sdk.handleCallback({ callbackUrl, expectedState: state, verifier });
  return storage.current;
}
