// The web console at /console in a headless Chromium (Debian's, driven by playwright-core)
// against a real server: sign-in through the OAuth pages as the built-in client, a project
// made and waited for, a connection string copied from the page (read back from the
// clipboard) and used with psql, a rotation, a backup and a restore of it (the data proves
// which state came back), the usage chart, and the operator's fleet view with an operator
// token, which is refused on writes. Every screen is saved as a screenshot (the paths are
// printed); every /v1 answer the page received is checked against the contract.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import { useServer } from './lib/fixture.mjs';
import { execFile } from 'node:child_process';
import { cli, BIN, SANITIZER_ENV } from './lib/server.mjs';
import { raw, uniq } from './lib/api.mjs';
import { createUser, launchBrowser, ARTIFACTS } from './lib/oauth.mjs';
import { psql, redact } from './lib/pg.mjs';
import { expectShape, opForPath } from './lib/schemas.mjs';

const S = {};

// A CLI run's stdout and stderr (exit 0 asserted).
function cliLinesBoth(args) {
  return new Promise((resolve, reject) => {
    execFile(BIN, args, { env: { ...process.env, ...SANITIZER_ENV } }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`pgfleet ${args.join(' ')}: ${stderr}`));
      resolve({ stdout, stderr });
    });
  });
}
const SHOTS = path.join(ARTIFACTS, 'console');
const ctx = useServer('console', { extraArgs: ['--usage-interval', '1'], setup });
const { it } = ctx;

async function setup() {
  S.server = ctx.server;
  S.user = await createUser(S.server, 'dana@example.com', 'dana-password-1');
  const made = await cliLinesBoth(['token', 'create', '--home', S.server.home, '--operator', '--name', 'e2e-operator']);
  S.operator = made.stdout.trim();
  assert.match(S.operator, /^pfs_/);
  S.operatorId = /operator token (tok_\S+)/.exec(made.stderr)[1];
  S.browser = await launchBrowser();
  await S.browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: S.server.baseUrl });
  S.page = await S.browser.context.newPage();
  S.problems = [];
  S.answers = [];
  S.page.on('pageerror', (e) => S.problems.push(`page error: ${e.message}`));
  // a 4xx the page asked for on purpose (a refused fleet view) is logged by Chromium as a
  // failed load: not a problem; a script error or a CSP refusal is
  S.page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) S.problems.push(`console error: ${m.text()}`);
  });
  S.page.on('response', async (r) => {
    const u = new URL(r.url());
    if (!u.pathname.startsWith('/v1/') || u.pathname === '/v1/fleet') return;
    const method = r.request().method();
    const text = await r.text().catch(() => '');
    S.answers.push({ method, path: u.pathname, status: r.status(), text });
  });
  fs.mkdirSync(SHOTS, { recursive: true });
  console.log(`# console screenshots: ${SHOTS}`);
}

after(async () => {
  await S.browser?.close();
});

async function shot(name) {
  const file = path.join(SHOTS, `${name}.png`);
  await S.page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot: ${file}`);
}

const page = () => S.page;
const url = (hash = '') => `${S.server.baseUrl}/console/${hash}`;

async function heading(text, timeout = 15000) {
  await page().getByRole('heading', { level: 1, name: text }).first().waitFor({ timeout });
}

async function statusIs(want, timeout = 30000) {
  await page().waitForFunction((w) => document.querySelector('#db-status')?.textContent === w, want, { timeout });
}

// Clicks the copy button named `name` and resolves what the clipboard then holds.
async function copy(name) {
  await page().getByRole('button', { name }).click();
  await page().getByText('Copied').first().waitFor({ timeout: 5000 });
  return page().evaluate(() => navigator.clipboard.readText());
}

// The confirm dialog: checks it names `what`, then confirms.
async function confirm(what) {
  const d = page().locator('dialog#confirm');
  await d.waitFor({ state: 'visible', timeout: 5000 });
  assert.ok((await d.textContent()).includes(what), `the confirm dialog names ${what}: ${await d.textContent()}`);
  await page().click('#confirm-ok');
  await d.waitFor({ state: 'hidden', timeout: 5000 });
}

it('serves the console with a CSP of its own origin, no framing; unknown files 404 with the same headers', async () => {
  for (const p of ['/console', '/console/', '/console/callback', '/console/app.js', '/console/nope.js']) {
    const r = await fetch(S.server.baseUrl + p);
    const body = await r.text();
    const csp = r.headers.get('content-security-policy') || '';
    assert.match(csp, /default-src 'self'/, `${p}: CSP ${csp}`);
    assert.match(csp, /script-src 'self'(;|$)/, `${p}: scripts from this origin only: ${csp}`);
    assert.match(csp, /frame-ancestors 'none'/, `${p}: ${csp}`);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, `${p}: ${csp}`);
    assert.equal(r.headers.get('x-frame-options'), 'DENY', p);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', p);
    if (p === '/console/nope.js') {
      assert.equal(r.status, 404);
      assert.equal(JSON.parse(body).error.code, 'NotFound');
    } else {
      assert.equal(r.status, 200, p);
      if (p.endsWith('.js')) assert.match(r.headers.get('content-type'), /^text\/javascript/);
      else assert.match(body, /<script type="module" src="\/console\/app.js"><\/script>/, p);
    }
  }
  // the page itself has no inline script or style, so the CSP costs it nothing
  const html = await (await fetch(`${S.server.baseUrl}/console/`)).text();
  assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)[^>]*>|\sstyle=|\son[a-z]+=/i);
});

it('signs in through the OAuth pages as the built-in client (PKCE) and lists projects', async () => {
  await page().goto(url());
  await heading('Sign in to pgfleet');
  await shot('01-signin');
  await page().click('#signin');
  await page().waitForSelector('form#signin', { timeout: 15000 });
  const authz = new URL(page().url());
  assert.equal(authz.pathname, '/authorize');
  assert.equal(authz.searchParams.get('client_id'), 'cli_console');
  assert.equal(authz.searchParams.get('redirect_uri'), `${S.server.baseUrl}/console/callback`);
  assert.equal(authz.searchParams.get('code_challenge_method'), 'S256');
  await page().fill('#email', S.user.email);
  await page().fill('#password', S.user.password);
  await Promise.all([page().waitForLoadState('load'), page().click('form#signin button[type=submit]')]);
  await page().waitForSelector('form#consent', { timeout: 15000 });
  await shot('02-consent');
  await page().click('form#consent button[value=allow]');
  await heading('Projects');
  assert.equal(new URL(page().url()).search, '', 'the code is gone from the address bar');
  // kept in this tab's session storage, never in a cookie
  const stored = await page().evaluate(() => JSON.parse(sessionStorage.getItem('pgfleet.console.auth')));
  assert.equal(stored.kind, 'oauth');
  assert.ok(stored.access && stored.refresh);
  const cookies = await S.browser.context.cookies(S.server.baseUrl);
  assert.ok(!cookies.some((c) => c.value.includes(stored.access) || c.value.includes(stored.refresh)), 'no token in a cookie');
  // keyboard: the create form's controls come in order
  await page().focus('#project-name');
  await page().keyboard.press('Tab');
  assert.equal(await page().evaluate(() => document.activeElement.id), 'project-region');
  await page().keyboard.press('Tab');
  assert.equal(await page().evaluate(() => document.activeElement.textContent), 'Create project');
});

it('creates a project, waits for its database to be ready, copies the direct string and uses it with psql', async () => {
  S.projectName = uniq('console');
  await page().fill('#project-name', S.projectName);
  await page().getByRole('button', { name: 'Create project' }).click();
  await page().waitForSelector('#secret', { timeout: 15000 });
  S.dbId = /#\/databases\/(db_[^/]+)$/.exec(page().url())[1];
  await statusIs('ready');
  await shot('03-database-created');
  S.cs1 = await copy('Copy Direct connection string');
  assert.equal(S.cs1, await page().inputValue('#secret-direct'));
  // a loopback public host: loopback-optional TLS, strings without sslmode (docs/tls.md)
  assert.match(S.cs1, /^postgresql:\/\/u_[^:]+:[^@]+@127\.0\.0\.1:\d+\/postgres$/);
  const pooled = await page().inputValue('#secret-pooled');
  assert.match(pooled, new RegExp(`/${S.dbId}$`));
  // the templates end as the strings the server prints do (here: no sslmode)
  const port = new URL(S.cs1).port;
  assert.equal(await page().inputValue('#tpl-direct'), `postgresql://USER:PASSWORD@127.0.0.1:${port}/postgres`);
  assert.equal(await page().inputValue('#tpl-pooled'), `postgresql://USER:PASSWORD@127.0.0.1:${new URL(pooled).port}/${S.dbId}`);
  await psql(S.cs1, "CREATE TABLE marks (v text); INSERT INTO marks VALUES ('before')");
  assert.equal(await psql(S.cs1, 'SELECT count(*) FROM marks'), '1');
  // shown once: neither a later visit in the page nor a reload shows the password again
  await page().evaluate(() => { location.hash = '#/projects'; });
  await heading('Projects');
  await page().evaluate((id) => { location.hash = `#/databases/${id}`; }, S.dbId);
  await heading(S.projectName);
  assert.equal(await page().locator('#secret').count(), 0);
  await page().reload();
  await heading(S.projectName);
  assert.equal(await page().locator('#secret').count(), 0);
  assert.ok(!(await page().evaluate(() => JSON.stringify(sessionStorage))).includes('postgresql://'), 'no string in session storage');
  assert.doesNotMatch(await page().content(), new RegExp(encodeURIComponent(new URL(S.cs1).password).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
});

it('shows the project with its branches and the database live, ready', async () => {
  await page().getByRole('link', { name: S.projectName }).first().click();
  await heading(S.projectName);
  await page().waitForFunction((id) => document.querySelector(`#databases tr[data-id="${id}"] .status`)?.textContent === 'ready', S.dbId, { timeout: 10000 });
  assert.ok(await page().getByRole('cell', { name: 'main', exact: true }).count(), 'the main branch is listed');
  await shot('04-project');
  await page().goto(url('#/projects'));
  await page().getByRole('link', { name: S.projectName }).waitFor();
  await shot('05-projects');
});

it('rotates the connection: the new string works with psql, the old one is refused; Escape cancels a revoke', async () => {
  await page().goto(url(`#/databases/${S.dbId}`));
  await heading(S.projectName);
  // a destructive action asks again, and Escape keeps things as they were
  await page().locator('button.revoke').first().click();
  await page().locator('dialog#confirm').waitFor({ state: 'visible' });
  assert.equal(await page().evaluate(() => document.activeElement.id), 'confirm-cancel', 'Cancel has the focus');
  await page().keyboard.press('Escape');
  await page().locator('dialog#confirm').waitFor({ state: 'hidden' });
  assert.equal(await page().locator('#connections tbody tr').count(), 1);

  await page().locator('button.rotate').first().click();
  await confirm('stops working');
  await page().waitForSelector('#secret', { timeout: 25000 });
  await shot('06-rotated');
  S.cs2 = await copy('Copy Direct connection string');
  assert.notEqual(S.cs2, S.cs1);
  assert.equal(await psql(S.cs2, 'SELECT count(*) FROM marks'), '1');
  await assert.rejects(psql(S.cs1, 'SELECT 1', { timeoutMs: 10000 }), /password authentication failed|authentication/, `old string ${redact(S.cs1)} still works`);
});

it('creates a second connection (its password shown once) and revokes it after asking', async () => {
  await page().fill('#connection-name', 'ci');
  await page().getByRole('button', { name: 'Create connection' }).click();
  await page().waitForFunction(() => document.querySelector('#secret-title')?.textContent.includes('ci (new connection)'), null, { timeout: 25000 });
  const cs = await page().inputValue('#secret-direct');
  assert.equal(await psql(cs, 'SELECT count(*) FROM marks'), '1');
  assert.equal(await page().locator('#connections tbody tr').count(), 2);
  await page().getByRole('button', { name: 'Revoke ci' }).click();
  await confirm('“ci”');
  await page().waitForFunction(() => document.querySelectorAll('#connections tbody tr').length === 1, null, { timeout: 25000 });
  await assert.rejects(psql(cs, 'SELECT 1', { timeoutMs: 10000 }), /authentication|does not exist/, 'a revoked connection is refused');
});

it('takes a backup, then restores it: the rows written after it are gone', async () => {
  const completed = () => page().locator('#backups tbody tr', { hasText: 'completed' }).count();
  // the first full backup of a new database runs by itself; wait for it so ours is the newest
  await page().waitForFunction(() => document.querySelectorAll('#backups tbody tr').length > 0 && ![...document.querySelectorAll('#backups tbody .status')].some((c) => c.textContent === 'running'), null, { timeout: 30000 });
  const before = await completed();
  await page().click('#take-backup');
  await page().waitForFunction((n) => [...document.querySelectorAll('#backups tbody .status')].filter((c) => c.textContent === 'completed').length > n, before, { timeout: 30000 });
  S.backupId = await page().locator('#backups tbody tr').first().getAttribute('data-id');
  await psql(S.cs2, "INSERT INTO marks VALUES ('after')");
  assert.equal(await psql(S.cs2, 'SELECT count(*) FROM marks'), '2');

  await page().getByRole('button', { name: `Restore from backup ${S.backupId}` }).click();
  await page().locator('dialog#confirm').waitFor({ state: 'visible' });
  // the point-in-time picker: off until chosen
  assert.ok(await page().isDisabled('#pitr-time'));
  await page().check('#pitr-at');
  assert.ok(await page().isEnabled('#pitr-time'));
  await shot('07-restore-dialog');
  await page().check('#pitr-latest');
  await confirm(S.backupId);
  await statusIs('ready', 45000);
  // the page may still show the 'ready' of before the restore: read until the restored
  // server answers (a refusal while it recovers is retried), then its rows must be the backup's
  let rows = null;
  for (const t0 = Date.now(); Date.now() - t0 < 45000; await new Promise((r) => setTimeout(r, 250))) {
    try {
      rows = await psql(S.cs2, 'SELECT string_agg(v, \',\') FROM marks');
      if (rows === 'before') break;
    } catch (e) {
      if (!/not available|starting up|shutting down/.test(String(e.message))) throw e;
    }
  }
  assert.equal(rows, 'before');
  await shot('08-restored');
});

it('shows usage as a chart (the transactions of the last minutes) and the metrics', async () => {
  let ops = 0;
  await page().goto(url(`#/databases/${S.dbId}`));
  for (let i = 0; i < 20 && ops === 0; i++) {
    if (i) await page().reload();
    await page().waitForSelector('#usage svg.chart');
    const t = await page().textContent('#usage-month');
    ops = Number(/This month: (\d+) operations/.exec(t)[1]);
    if (!ops) await new Promise((r) => setTimeout(r, 1000));
  }
  assert.ok(ops > 0, 'the sampler counted our transactions');
  assert.equal(await page().locator('#usage svg.chart').first().locator('rect.bar').count(), 14);
  const label = await page().locator('#usage svg.chart').first().getAttribute('aria-label');
  assert.match(label, /^Operations per day: /);
  assert.ok(await page().locator('#metrics').textContent().then((t) => t.includes('Operations this month')));
  await page().locator('#sec-usage').scrollIntoViewIfNeeded();
  await shot('09-usage');
});

it('the fleet view: refused to a workspace sign-in; with an operator token, every database by state', async () => {
  await page().goto(url('#/fleet'));
  await page().waitForSelector('#fleet-refused');
  assert.match(await page().textContent('#fleet-refused'), /operator token/);
  await page().getByRole('button', { name: 'Sign out' }).click();
  await heading('Sign in to pgfleet');
  await page().fill('#token', S.operator);
  await page().getByRole('button', { name: 'Use this token' }).click();
  await heading('Fleet');
  await page().waitForSelector('#fleet');
  const text = await page().textContent('#fleet');
  assert.ok(text.includes(S.dbId), 'the database is listed');
  assert.ok(text.includes(S.user.workspaceId), 'with its workspace');
  const total = await page().locator('[aria-label="Databases by status"] .st-total .num').textContent();
  assert.ok(Number(total) >= 1, `total ${total}`);
  assert.equal(await page().getByRole('link', { name: 'Projects' }).count(), 0, 'an operator gets the fleet only');
  await shot('10-fleet');
});

it('the operator token is read-only and for the fleet only; workspace credentials cannot read the fleet', async () => {
  const op = { token: S.operator };
  const fleet = await raw(S.server, 'GET', '/v1/fleet', op);
  assert.equal(fleet.status, 200);
  assert.ok(fleet.body.data.list.some((d) => d.id === S.dbId));
  assert.ok(fleet.body.data.databases.byStatus.ready >= 1);
  // awake and asleep come from the data path (no database sleeps here: --suspend-after 300)
  const sv = fleet.body.data.servers;
  assert.equal(sv.awake + sv.asleep, fleet.body.data.list.filter((d) => 'awake' in d).length, JSON.stringify(sv));
  assert.equal(fleet.body.data.list.find((d) => d.id === S.dbId).awake, true);
  for (const [method, p, json] of [['POST', '/v1/projects', { name: 'nope' }], ['DELETE', `/v1/databases/${S.dbId}`], ['POST', `/v1/databases/${S.dbId}/backups`, {}], ['GET', '/v1/projects'], ['GET', `/v1/databases/${S.dbId}`]]) {
    const r = await raw(S.server, method, p, { ...op, json });
    assert.equal(r.status, 403, `${method} ${p} with the operator token: ${r.text}`);
    assert.equal(r.body.error.hint, 'operator');
  }
  const ws = await raw(S.server, 'GET', '/v1/fleet');
  assert.equal(ws.status, 403, 'a workspace service token is refused');
  assert.equal(ws.body.error.hint, 'operator');
  // an operator token is no workspace's: not in its owner's token list
  const me = await raw(S.server, 'GET', '/v1/me');
  const list = await raw(S.server, 'GET', `/v1/workspaces/${me.body.data.workspace.id}/service-tokens`);
  assert.ok(!list.body.data.some((t) => t.name === 'e2e-operator'), 'the operator token is not listed');
  // revoked on the host: refused at once
  assert.match(S.operatorId, /^tok_/);
  await cli(['token', 'revoke', '--home', S.server.home, '--id', S.operatorId], { full: true });
  assert.equal((await raw(S.server, 'GET', '/v1/fleet', op)).status, 401);
});

it('every /v1 answer the page received fits the contract, and the page logged no error', async () => {
  assert.ok(S.answers.length > 10, `answers seen: ${S.answers.length}`);
  for (const a of S.answers) {
    const opId = opForPath(a.method, a.path);
    if (!opId) continue;
    expectShape(opId, a.status, a.text ? JSON.parse(a.text) : undefined, { what: `console: ${a.method} ${a.path}` });
  }
  assert.deepEqual(S.problems, []);
});

ctx.itShutsDownCleanly();
