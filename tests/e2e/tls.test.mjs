// Certificates renewed without a restart (issue 12): the server runs with --tls-cert and
// --tls-key (a CA of this file's own, as a public CA would sign them); a renewal written over
// those files is picked up by every database server and PgBouncer, as is a SIGHUP, with
// every open session kept; a pair that does not belong together is not taken. The API
// listener's own HTTPS pair (--http-tls-cert/--http-tls-key) is renewed the same way.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import pg from 'pg';
import tls from 'node:tls';
import { useServer } from './lib/fixture.mjs';
import { Server } from './lib/server.mjs';
import { call, expectStatus, waitReady, uniq } from './lib/api.mjs';
import { until } from './lib/procs.mjs';

// ---- a CA and two server certificates for localhost, made before the server starts ----
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgfleet-e2e-certs-'));
const f = (n) => path.join(dir, n);
const ossl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=e2e public CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
fs.writeFileSync(f('ext.cnf'), 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n');
for (const n of ['one', 'two']) {
  ossl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f(`${n}.key`), '-out', f(`${n}.csr`), '-subj', '/CN=localhost');
  ossl('x509', '-req', '-in', f(`${n}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f(`${n}.crt`));
}
const fingerprint = (n) => execFileSync('openssl', ['x509', '-in', f(`${n}.crt`), '-noout', '-fingerprint', '-sha256']).toString().trim().split('=')[1];
// a renewal lands as a tool writes it: each file replaced whole
function install(certOf, keyOf, as = 'given') {
  for (const [src, dst] of [[f(`${keyOf}.key`), f(`${as}.key`)], [f(`${certOf}.crt`), f(`${as}.crt`)]]) {
    fs.copyFileSync(src, `${dst}.tmp`);
    fs.renameSync(`${dst}.tmp`, dst);
  }
}
install('one', 'one');

const ctx = useServer('tls', { extraArgs: ['--tls-cert', f('given.crt'), '--tls-key', f('given.key'), '--tls-ca', f('ca.crt')] });
const S = { clients: [] };
after(async () => {
  for (const c of S.clients) { try { await c.end(); } catch { /* gone */ } }
  fs.rmSync(dir, { recursive: true, force: true });
});

const ca = fs.readFileSync(f('ca.crt'), 'utf8');
// a session that verifies the server as host localhost; returns it with the certificate seen
async function session(cs) {
  const u = new URL(cs);
  u.hostname = 'localhost';
  const c = new pg.Client({ connectionString: u.toString(), ssl: { ca, servername: 'localhost' } });
  c.on('error', (e) => { c.lastError = e; });
  await c.connect();
  const fp = c.connection.stream.getPeerCertificate().fingerprint256;
  return { c, fp };
}
async function served(cs) {
  const { c, fp } = await session(cs);
  await c.end();
  return fp;
}
const pid = async (c) => (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;

ctx.it('setup: a database; both endpoints serve the given certificate, verified for localhost', async () => {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('tls') } }), 201).data;
  await waitReady(ctx.c, p.database.id);
  const conn = p.database.connections[0];
  S.direct = conn.endpoints.direct.connectionString;
  S.pooled = conn.endpoints.pooled.connectionString;
  assert.equal(await served(S.direct), fingerprint('one'));
  assert.equal(await served(S.pooled), fingerprint('one'));
  const r = await fetch(`${ctx.server.baseUrl}/v1/ca.pem`);
  assert.equal((await r.text()).trim(), ca.trim(), 'GET /v1/ca.pem serves --tls-ca');
});

ctx.it('a renewal written over the files is served by every endpoint; open sessions stay', async () => {
  const d = await session(S.direct);
  const p = await session(S.pooled);
  S.clients.push(d.c, p.c);
  await p.c.query('BEGIN'); // a pooled session holding its server connection
  const before = await pid(d.c);
  install('two', 'two');
  const t0 = Date.now();
  const ok = await until(async () => (await served(S.direct)) === fingerprint('two') && (await served(S.pooled)) === fingerprint('two'), { timeoutMs: 15000, intervalMs: 250 });
  assert.ok(ok, 'the renewed certificate is not served');
  console.log(`# renewal served by both endpoints ${Date.now() - t0} ms after the files changed`);
  assert.equal(await pid(d.c), before, 'the direct session is the same backend');
  assert.equal((await p.c.query('SELECT 1 AS one')).rows[0].one, 1, 'the pooled session in its transaction');
  await p.c.query('COMMIT');
  assert.equal(d.c.lastError ?? null, null);
  assert.equal(p.c.lastError ?? null, null);
  assert.match(fs.readFileSync(ctx.server.logFile, 'utf8'), /reloaded a new certificate/);
});

ctx.it('SIGHUP reloads too; the server stays up', async () => {
  const d = await session(S.direct);
  S.clients.push(d.c);
  // the files change and the signal comes at once: whichever is seen first, one reload
  install('one', 'one');
  process.kill(ctx.server.pid, 'SIGHUP');
  const ok = await until(async () => (await served(S.direct)) === fingerprint('one') && (await served(S.pooled)) === fingerprint('one'), { timeoutMs: 15000, intervalMs: 250 });
  assert.ok(ok, 'the certificate after SIGHUP is not served');
  assert.equal(ctx.server.exit, null, 'pgfleet still runs after SIGHUP');
  assert.equal((await d.c.query('SELECT 1 AS one')).rows[0].one, 1);
  assert.match(fs.readFileSync(ctx.server.logFile, 'utf8'), /received SIGHUP: reloading TLS/);
});

ctx.it('a certificate without its key (a renewal half written) is not taken', async () => {
  const mismatches = () => fs.readFileSync(ctx.server.logFile, 'utf8').split('does not belong to the certificate').length - 1;
  const n0 = mismatches();
  install('two', 'one');
  const seen = await until(() => mismatches() > n0, { timeoutMs: 15000, intervalMs: 250 });
  assert.ok(seen, 'the mismatch is logged');
  assert.equal(await served(S.direct), fingerprint('one'), 'the previous certificate is still served');
  assert.equal(await served(S.pooled), fingerprint('one'));
  install('two', 'two'); // the key arrives
  assert.ok(await until(async () => (await served(S.direct)) === fingerprint('two'), { timeoutMs: 15000, intervalMs: 250 }));
});

// ---- the API listener's HTTPS pair ----
// the certificate a new TLS connection to the API gets, verified for localhost
function apiServed(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on('error', reject);
  });
}
// GET /healthz on a kept-alive agent: the status and the socket's certificate
function healthz(base, agent) {
  return new Promise((resolve, reject) => {
    const req = https.get(`${base}/healthz`, { agent, ca, servername: 'localhost' }, (res) => {
      const { socket } = res; // given back to the agent at the end
      const fp = socket.getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, fp, socket }));
    });
    req.on('error', reject);
  });
}

ctx.it('the API listener: a renewal of --http-tls-cert is served without a restart; a kept-alive connection stays; a half-written pair and SIGHUP', async () => {
  install('one', 'one', 'api');
  const s = await new Server('tls-api', { tls: true, extraArgs: ['--http-tls-cert', f('api.crt'), '--http-tls-key', f('api.key')] }).init();
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await s.start();
    assert.equal(await apiServed(s.httpPort), fingerprint('one'));
    const first = await healthz(s.baseUrl, agent);
    assert.equal(first.status, 200);
    assert.equal(first.fp, fingerprint('one'));
    install('two', 'two', 'api');
    const t0 = Date.now();
    assert.ok(await until(async () => (await apiServed(s.httpPort)) === fingerprint('two'), { timeoutMs: 15000, intervalMs: 250 }), 'the renewed API certificate is not served');
    console.log(`# API renewal served ${Date.now() - t0} ms after the files changed`);
    const again = await healthz(s.baseUrl, agent);
    assert.equal(again.status, 200);
    assert.equal(again.socket, first.socket, 'the kept-alive connection is the same socket');
    assert.equal(again.fp, fingerprint('one'), 'the kept-alive connection keeps its session');
    // a certificate whose key has not arrived yet is refused; the served pair stays
    const refusals = () => fs.readFileSync(s.logFile, 'utf8').split('API keeps its previous certificate').length - 1;
    install('one', 'two', 'api');
    assert.ok(await until(() => refusals() > 0, { timeoutMs: 15000, intervalMs: 250 }), 'the mismatched pair is logged');
    assert.equal(await apiServed(s.httpPort), fingerprint('two'), 'the previous certificate is still served');
    // the key arrives and a SIGHUP comes at once: whichever is seen first, it is served
    fs.copyFileSync(f('one.key'), f('api.key'));
    process.kill(s.pid, 'SIGHUP');
    assert.ok(await until(async () => (await apiServed(s.httpPort)) === fingerprint('one'), { timeoutMs: 15000, intervalMs: 250 }), 'the pair after SIGHUP is not served');
    assert.equal(s.exit, null, 'pgfleet still runs');
    assert.match(fs.readFileSync(s.logFile, 'utf8'), /HTTPS certificate reloaded/);
  } finally {
    agent.destroy();
    await s.stop();
    await s.cleanup();
  }
});

ctx.itShutsDownCleanly();
