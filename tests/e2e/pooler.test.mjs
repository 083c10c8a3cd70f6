// Pooled endpoint (PgBouncer) and TLS on every database endpoint (issue 4): shapes,
// psql and pg through both endpoints with sslmode=require and verify-full, plaintext
// refused, 500 clients through the pool, credential changes live within a second on both
// endpoints, other clients undisturbed by reloads, PgBouncer restarted and adopted.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, waitReady, uniq } from './lib/api.mjs';
import { connect, closeQuietly, psql, connectFails, passwordOf } from './lib/pg.mjs';
import { until, postmasterPidFile } from './lib/procs.mjs';

// --tls-mode require: strings carry sslmode=require and plaintext is refused from everywhere
const ctx = useServer('pooler', { extraArgs: ['--tls-mode', 'require'] });
const S = { clients: [] };
after(async () => { for (const c of S.clients) await closeQuietly(c); });

// psql that resolves { ok, out } instead of throwing.
function psqlTry(cs, command = 'SELECT 1') {
  return new Promise((resolve) => {
    execFile('psql', [cs, '-XAtqc', command], { timeout: 20000, env: { ...process.env, PGCONNECT_TIMEOUT: '5' } },
      (err, stdout, stderr) => resolve({ ok: !err, out: err ? String(stderr || err.message) : stdout.trim() }));
  });
}
const withQuery = (cs, q) => `${cs.replace(/\?.*$/, '')}?${q}`;
const verifyFull = (cs) => withQuery(cs, `sslmode=verify-full&sslrootcert=${S.caPath}`);
const pgbouncerPid = () => Number(fs.readFileSync(path.join(ctx.server.home, 'pooler/pgbouncer.pid'), 'utf8').trim());

// Ready does not wait for PgBouncer (docs/pooler.md): a new database's pooled endpoint
// follows within one sync (one starts at most every 300 ms), so it is waited for, boundedly
async function pooledFollows(cs) {
  assert.ok(await until(async () => (await psqlTry(cs)).ok, { timeoutMs: 5000, intervalMs: 100 }), 'the pooled endpoint did not follow the new database within 5 s');
}

async function newDatabase(name) {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq(name) } }), 201).data;
  await waitReady(ctx.c, p.database.id);
  await pooledFollows(p.database.connections[0].endpoints.pooled.connectionString);
  return { project: p, db: p.database, conn: p.database.connections[0] };
}

function checkEndpoint(ep, withSecret, what) {
  assert.equal(typeof ep?.host, 'string', `${what}: host`);
  assert.equal(typeof ep?.port, 'number', `${what}: port`);
  assert.equal('connectionString' in ep, withSecret, `${what}: connectionString only with the password`);
  if (withSecret) assert.match(ep.connectionString, /^postgresql:\/\/u_[a-z0-9]+:[A-Za-z0-9]+@127\.0\.0\.1:\d+\/[a-z0-9_]+\?sslmode=require$/, what);
}

ctx.it('GET /v1/ca.pem (no auth) serves the CA certificate', async () => {
  const r = await fetch(`${ctx.server.baseUrl}/v1/ca.pem`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/x-pem-file');
  const pem = await r.text();
  assert.match(pem, /^-----BEGIN CERTIFICATE-----\n/);
  S.caPath = path.join(ctx.server.home, 'client-ca.pem');
  fs.writeFileSync(S.caPath, pem);
});

ctx.it('connection objects carry endpoints.pooled; every string has sslmode=require', async () => {
  const { db, conn } = await newDatabase('shapes');
  S.db = db;
  checkEndpoint(conn.endpoints.direct, true, 'direct');
  checkEndpoint(conn.endpoints.pooled, true, 'pooled');
  assert.equal(conn.endpoints.pooled.port, ctx.server.poolerPort);
  assert.ok(conn.endpoints.pooled.connectionString.endsWith(`:${ctx.server.poolerPort}/${db.id}?sslmode=require`), 'pooled dbname is the database id');
  const got = expectStatus(await call(ctx.c, 'GET', '/v1/connections/{id}', { params: { path: { id: conn.id } } }), 200).data;
  checkEndpoint(got.endpoints.pooled, false, 'read pooled');
  const made = expectStatus(await call(ctx.c, 'POST', '/v1/connections', { body: { databaseId: db.id, name: 'second' } }), 201).data;
  checkEndpoint(made.endpoints.pooled, true, 'created pooled');
  assert.equal(made.connectionString, made.endpoints.pooled.connectionString, 'deprecated connectionString is the pooled one');
  assert.equal(made.host, `127.0.0.1:${conn.endpoints.direct.port}`, 'deprecated host stays the direct one');
  // the console's templates end as the strings do
  const r = await fetch(`${ctx.server.baseUrl}/console/settings.json`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { connectionQuery: '?sslmode=require' });
});

ctx.it('psql and pg through both endpoints with require and verify-full; plaintext refused', async () => {
  const { conn } = await newDatabase('tls');
  for (const kind of ['direct', 'pooled']) {
    const cs = conn.endpoints[kind].connectionString;
    assert.equal(await psql(cs, 'SELECT current_user'), 'pgfleet_owner', `${kind} psql require`);
    assert.equal(await psql(verifyFull(cs), 'SELECT 1'), '1', `${kind} psql verify-full`);
    const plain = await psqlTry(withQuery(cs, 'sslmode=disable'));
    assert.ok(!plain.ok, `${kind}: plaintext psql must be refused`);
    assert.match(plain.out, /SSL required|no encryption/, kind);
    const c1 = await connect(cs); // sslmode=require, libpq's meaning
    assert.equal((await c1.query('SELECT 1 AS one')).rows[0].one, 1);
    await closeQuietly(c1);
    // verify-full with pg: the CA from /v1/ca.pem; `host` in the TLS options makes node check
    // the IP SAN (pg 8.16 leaves it unset for IP hosts, and node then checks 'localhost')
    const u = new URL(cs);
    const c2 = new pg.Client({ host: u.hostname, port: Number(u.port), user: u.username, password: decodeURIComponent(u.password),
      database: u.pathname.slice(1), ssl: { ca: fs.readFileSync(S.caPath, 'utf8'), rejectUnauthorized: true, host: u.hostname } });
    await c2.connect();
    assert.equal((await c2.query('SELECT 2 AS two')).rows[0].two, 2);
    await closeQuietly(c2);
    // and a server certificate the CA did not sign is refused
    const c3 = new pg.Client({ host: u.hostname, port: Number(u.port), user: u.username, password: decodeURIComponent(u.password),
      database: u.pathname.slice(1), ssl: { rejectUnauthorized: true, host: u.hostname } });
    c3.on('error', () => {});
    await assert.rejects(c3.connect(), /self-signed|unable to verify|certificate/i, `${kind}: verify against the system CAs fails`);
    await connectFails(withQuery(cs, 'sslmode=disable'), `${kind} plaintext pg`);
  }
  assert.equal(await psql(conn.endpoints.direct.connectionString, 'SHOW ssl'), 'on');
});

ctx.it('no plaintext password is written under the home', async () => {
  const { conn } = await newDatabase('secrets');
  const pass = passwordOf(conn.endpoints.pooled.connectionString);
  await psql(conn.endpoints.pooled.connectionString, 'SELECT 1');
  const walk = (dir) => {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (st?.isDirectory()) walk(p);
      else if (st?.isFile() && st.size < 64 << 20) assert.ok(!fs.readFileSync(p).includes(pass), `password found in ${p}`);
    }
  };
  walk(path.join(ctx.server.home, 'pooler'));
  walk(path.join(ctx.server.home, 'tls'));
  assert.ok(!fs.readFileSync(path.join(ctx.server.home, 'catalog.db')).includes(pass));
});

ctx.it('500 concurrent clients through the pooled endpoint use at most --pool-size (20) server connections', async () => {
  const { conn } = await newDatabase('many');
  const direct = conn.endpoints.direct.connectionString;
  assert.equal(await psql(direct, 'SHOW max_connections'), '120');
  const clients = await Promise.all(Array.from({ length: 500 }, () => connect(conn.endpoints.pooled.connectionString, { timeoutMs: 30000 })));
  S.clients.push(...clients);
  const rs = await Promise.all(clients.map((c, i) => c.query('SELECT $1::int AS i, pg_sleep(0.01)', [i])));
  rs.forEach((r, i) => assert.equal(r.rows[0].i, i));
  // PgBouncer's server connections: not this psql's own session, nor pgfleet's admin ones
  const backends = Number(await psql(direct, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename <> 'pgfleet_admin'"));
  assert.ok(backends <= 20, `server backends: ${backends}`);
  await Promise.all(clients.map(closeQuietly));
  assert.equal(await psql(direct, 'SHOW max_connections'), '120');
});

ctx.it('rotation and deletion: the first connection after the answer is refused on both endpoints', async () => {
  const { db } = await newDatabase('rotate');
  const old = expectStatus(await call(ctx.c, 'POST', '/v1/databases/{databaseId}/connections', { params: { path: { databaseId: db.id } }, body: { name: 'r' } }), 200).data;
  for (const kind of ['direct', 'pooled']) await psql(old.endpoints[kind].connectionString, 'SELECT 1');
  const fresh = expectStatus(await call(ctx.c, 'POST', '/v1/connections/{id}/rotate', { params: { path: { id: old.id } } }), 200).data;
  // the answer comes once the change is applied: the first connection after it is refused
  for (const kind of ['direct', 'pooled']) {
    assert.ok(!(await psqlTry(old.endpoints[kind].connectionString)).ok, `old password still works on ${kind}`);
    await psql(fresh.endpoints[kind].connectionString, 'SELECT 1');
  }
  expectStatus(await call(ctx.c, 'DELETE', '/v1/connections/{id}', { params: { path: { id: old.id } } }), 204);
  for (const kind of ['direct', 'pooled']) {
    assert.ok(!(await psqlTry(fresh.endpoints[kind].connectionString)).ok, `deleted credential still works on ${kind}`);
  }
});

ctx.it("a pooled session survives another database's create and delete", async () => {
  const { conn } = await newDatabase('steady');
  const c = await connect(conn.endpoints.pooled.connectionString);
  S.clients.push(c);
  await c.query('CREATE TABLE keep (v int)');
  await c.query('INSERT INTO keep VALUES (1)');
  const { project } = await newDatabase('other');
  const second = expectStatus(await call(ctx.c, 'POST', '/v1/projects/{projectId}/databases', { params: { path: { projectId: project.id } }, body: { name: 'second' } }), 201).data;
  await waitReady(ctx.c, second.id);
  const otherCs = second.connections[0].endpoints.pooled.connectionString;
  await pooledFollows(otherCs);
  expectStatus(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: second.id } } }), 204);
  assert.ok(!(await psqlTry(otherCs)).ok, 'the deleted database is gone from the pooled endpoint');
  assert.equal((await c.query('SELECT count(*)::int AS n FROM keep')).rows[0].n, 1);
  assert.equal(c.lastError, null, 'the session was never dropped');
});

ctx.it('PgBouncer killed: the pooled endpoint is back within a few seconds', async () => {
  const { conn } = await newDatabase('phoenix');
  const cs = conn.endpoints.pooled.connectionString;
  await psql(cs, 'SELECT 1');
  const pid = pgbouncerPid();
  process.kill(pid, 'SIGKILL');
  const t0 = Date.now();
  const back = await until(async () => (await psqlTry(cs)).ok, { timeoutMs: 8000, intervalMs: 100 });
  assert.ok(back, 'pooled endpoint did not come back within 8 s');
  assert.notEqual(pgbouncerPid(), pid, 'a new PgBouncer serves');
  console.log(`# pooled endpoint back ${Date.now() - t0} ms after SIGKILL of PgBouncer`);
});

ctx.it('PgBouncer outlives a kill -9 of pgfleet and is adopted, then follows changes', async () => {
  const { db, conn } = await newDatabase('adopt');
  const cs = conn.endpoints.pooled.connectionString;
  const pid = pgbouncerPid();
  await ctx.server.kill9();
  await psql(cs, 'SELECT 1'); // serves while pgfleet is down
  await ctx.server.start();
  await psql(cs, 'SELECT 1');
  assert.equal(pgbouncerPid(), pid, 'the running PgBouncer was adopted, not started twice');
  assert.match(ctx.server.log(), /pooler: adopted running PgBouncer/);
  const made = expectStatus(await call(ctx.c, 'POST', '/v1/connections', { body: { databaseId: db.id, name: 'after' } }), 201).data;
  await psql(made.endpoints.pooled.connectionString, 'SELECT 1');
});

ctx.it('a new --public-host after a kill -9: the adopted servers and PgBouncer present the new certificate', async () => {
  const { db, conn } = await newDatabase('rehost');
  const pmPid = postmasterPidFile(ctx.server.home, db.id);
  const bouncer = pgbouncerPid();
  // verify-full to the name db.example.test, reached at 127.0.0.1 (hostaddr)
  const asNamed = (cs) => { const u = new URL(cs); u.hostname = 'db.example.test'; u.search = `?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert=${S.caPath}`; return u.toString(); };
  // the certificate names localhost, 127.0.0.1 and ::1 only: verify-full to the name fails
  for (const kind of ['direct', 'pooled']) {
    const r = await psqlTry(asNamed(conn.endpoints[kind].connectionString));
    assert.ok(!r.ok && /does not match host name|certificate/.test(r.out), `${kind}: ${r.out}`);
  }
  await ctx.server.kill9();
  const saved = ctx.server.extraArgs;
  ctx.server.extraArgs = [...saved, '--public-host', 'db.example.test'];
  try {
    await ctx.server.start();
    await waitReady(ctx.c, db.id);
    assert.equal(postmasterPidFile(ctx.server.home, db.id), pmPid, 'the server was adopted, not restarted');
    assert.equal(pgbouncerPid(), bouncer, 'PgBouncer was adopted, not restarted');
    const got = expectStatus(await call(ctx.c, 'GET', '/v1/connections/{id}', { params: { path: { id: conn.id } } }), 200).data;
    assert.equal(got.endpoints.direct.host, 'db.example.test');
    for (const kind of ['direct', 'pooled']) {
      const cs = asNamed(conn.endpoints[kind].connectionString);
      assert.ok(await until(async () => (await psqlTry(cs)).ok, { timeoutMs: 10000, intervalMs: 200 }),
        `${kind}: verify-full to db.example.test still fails: ${(await psqlTry(cs)).out}`);
    }
  } finally {
    ctx.server.extraArgs = saved;
  }
});

ctx.itShutsDownCleanly();
