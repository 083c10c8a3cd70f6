// Pooled endpoint (PgBouncer) and TLS on every database endpoint (issue 4).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startServer, sleep } from './lib/server.mjs';

const run = promisify(execFile);
let srv;
let caPath;

before(async () => {
  srv = await startServer();
  const r = await fetch(srv.base + '/v1/ca.pem');
  assert.equal(r.status, 200);
  caPath = join(srv.home, 'client-ca.pem');
  writeFileSync(caPath, await r.text());
});
after(async () => { await srv?.cleanup(); });

// psql -c sql against a connection string; resolves { ok, out }.
async function psql(cs, sql = 'select 1') {
  try {
    const { stdout } = await run('psql', [cs, '-XAtqc', sql], { env: { ...process.env, PGCONNECT_TIMEOUT: '5' }, timeout: 20000 });
    return { ok: true, out: stdout.trim() };
  } catch (err) {
    return { ok: false, out: String(err.stderr || err.message) };
  }
}

// `pg` client: libpq's meaning of sslmode=require (encrypt, do not verify) needs
// uselibpqcompat=true; verify-full reads the CA through sslrootcert.
const withParams = (cs, params) => cs.replace(/\?.*$/, '') + '?' + params;
const pgRequire = (cs) => withParams(cs, 'sslmode=require&uselibpqcompat=true');
const pgVerify = (cs) => withParams(cs, `sslmode=verify-full&sslrootcert=${caPath}`);

async function pgQuery(cs, sql = 'select 1 as one', ssl) {
  const c = new pg.Client(ssl === false ? { connectionString: withParams(cs, 'sslmode=disable') } : { connectionString: cs });
  c.on('error', () => {});
  try {
    await c.connect();
    const r = await c.query(sql);
    return { ok: true, rows: r.rows };
  } catch (err) {
    return { ok: false, err: err.message };
  } finally {
    await c.end().catch(() => {});
  }
}

function checkEndpoint(ep, withSecret) {
  assert.equal(typeof ep.host, 'string');
  assert.equal(typeof ep.port, 'number');
  const allowed = withSecret ? ['host', 'port', 'connectionString'] : ['host', 'port'];
  assert.deepEqual(Object.keys(ep).filter((k) => !allowed.includes(k)), []);
  if (withSecret) assert.match(ep.connectionString, /^postgresql:\/\/u_[a-z0-9]+:[A-Za-z0-9]+@.+\?sslmode=require$/);
}

test('connection objects carry endpoints.pooled and sslmode=require', async () => {
  const { db, conn } = await srv.createDatabase('shapes');
  checkEndpoint(conn.endpoints.direct, true);
  checkEndpoint(conn.endpoints.pooled, true);
  assert.equal(conn.endpoints.pooled.port, srv.poolerPort);
  assert.ok(conn.endpoints.pooled.connectionString.endsWith(`:${srv.poolerPort}/${db.id}?sslmode=require`));
  // reads: host and port, no secrets
  const got = await srv.client.GET('/v1/connections/{id}', { params: { path: { id: conn.id } } });
  assert.equal(got.response.status, 200);
  checkEndpoint(got.data.data.endpoints.pooled, false);
  // create: the deprecated top-level connectionString is the pooled one
  const made = await srv.client.POST('/v1/connections', { body: { databaseId: db.id, name: 'second' } });
  assert.equal(made.response.status, 201);
  const c2 = made.data.data;
  checkEndpoint(c2.endpoints.pooled, true);
  assert.equal(c2.connectionString, c2.endpoints.pooled.connectionString);
  assert.equal(c2.host, `127.0.0.1:${db.connections[0].endpoints.direct.port}`);
});

test('psql and pg through both endpoints with require and verify-full; plaintext refused', async () => {
  const { conn } = await srv.createDatabase('tls');
  const direct = conn.endpoints.direct.connectionString;
  const pooled = conn.endpoints.pooled.connectionString;
  for (const [name, cs] of [['direct', direct], ['pooled', pooled]]) {
    const a = await psql(cs, 'select current_user');
    assert.ok(a.ok, `${name} psql require: ${a.out}`);
    assert.equal(a.out, 'pgfleet_owner');
    const b = await psql(withParams(cs, `sslmode=verify-full&sslrootcert=${caPath}`));
    assert.ok(b.ok, `${name} psql verify-full: ${b.out}`);
    const c = await psql(withParams(cs, 'sslmode=disable'));
    assert.ok(!c.ok, `${name} plaintext must be refused`);
    assert.match(c.out, /SSL required|no encryption/);
    const d = await pgQuery(pgRequire(cs));
    assert.ok(d.ok, `${name} pg require: ${d.err}`);
    const e = await pgQuery(pgVerify(cs));
    assert.ok(e.ok, `${name} pg verify-full: ${e.err}`);
    const f = await pgQuery(cs, 'select 1', false);
    assert.ok(!f.ok, `${name} pg plaintext must be refused`);
  }
  // the direct endpoint really is TLS
  const ssl = await psql(direct, 'show ssl');
  assert.equal(ssl.out, 'on');
});

test('no plaintext password is written under the home', async () => {
  const { conn } = await srv.createDatabase('secrets');
  const pass = new URL(conn.endpoints.pooled.connectionString).password;
  assert.ok((await psql(conn.endpoints.pooled.connectionString)).ok);
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size < 64 * 1024 * 1024) assert.ok(!readFileSync(p).includes(pass), `password found in ${p}`);
    }
  };
  walk(join(srv.home, 'pooler'));
  walk(join(srv.home, 'keys'));
  assert.ok(!readFileSync(join(srv.home, 'catalog.db')).includes(pass));
});

test('500 concurrent clients through the pooled endpoint; max_connections stays 20', async () => {
  const { conn } = await srv.createDatabase('many');
  const cs = pgRequire(conn.endpoints.pooled.connectionString);
  const max = await psql(conn.endpoints.direct.connectionString, 'show max_connections');
  assert.equal(max.out, '20');
  const clients = Array.from({ length: 500 }, () => new pg.Client({ connectionString: cs }));
  for (const c of clients) c.on('error', () => {});
  try {
    await Promise.all(clients.map((c) => c.connect()));
    const rs = await Promise.all(clients.map((c, i) => c.query('select $1::int as i, pg_sleep(0.01)', [i])));
    rs.forEach((r, i) => assert.equal(r.rows[0].i, i));
    const backends = await psql(conn.endpoints.direct.connectionString,
      "select count(*) from pg_stat_activity where backend_type = 'client backend'");
    assert.ok(Number(backends.out) <= 20, `backends: ${backends.out}`);
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
  assert.equal((await psql(conn.endpoints.direct.connectionString, 'show max_connections')).out, '20');
});

// Polls fn until it is true, up to ms; returns the time it took.
async function within(ms, fn) {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - t0;
    if (Date.now() - t0 > ms) return Infinity;
    await sleep(25);
  }
}

test('rotation and deletion are refused on both endpoints within one second', async () => {
  const { db } = await srv.createDatabase('rotate');
  const made = await srv.client.POST('/v1/databases/{databaseId}/connections', { params: { path: { databaseId: db.id } }, body: { name: 'r' } });
  const old = made.data.data;
  assert.ok((await psql(old.endpoints.pooled.connectionString)).ok);
  assert.ok((await psql(old.endpoints.direct.connectionString)).ok);
  const rot = await srv.api('POST', `/v1/connections/${old.id}/rotate`);
  assert.equal(rot.status, 200);
  const fresh = rot.body.data;
  for (const ep of ['pooled', 'direct']) {
    const t = await within(1000, async () => !(await psql(old.endpoints[ep].connectionString)).ok);
    assert.ok(t <= 1000, `old password still works on ${ep}`);
    assert.ok((await psql(fresh.endpoints[ep].connectionString)).ok, `new password on ${ep}`);
  }
  const del = await srv.api('DELETE', `/v1/connections/${old.id}`);
  assert.equal(del.status, 204);
  for (const ep of ['pooled', 'direct']) {
    const t = await within(1000, async () => !(await psql(fresh.endpoints[ep].connectionString)).ok);
    assert.ok(t <= 1000, `deleted credential still works on ${ep}`);
  }
});

test("a pooled session survives another database's create and delete", async () => {
  const { conn } = await srv.createDatabase('steady');
  const c = new pg.Client({ connectionString: pgRequire(conn.endpoints.pooled.connectionString) });
  let errored = null;
  c.on('error', (e) => { errored = e; });
  await c.connect();
  await c.query('create table keep (v int)');
  await c.query('insert into keep values (1)');
  // another project's second (non-default) database: created, used, deleted
  const { project } = await srv.createDatabase('other');
  const mk = await srv.api('POST', `/v1/projects/${project.id}/databases`, { name: 'second' });
  assert.equal(mk.status, 201, JSON.stringify(mk.body));
  const other = { db: mk.body.data, conn: mk.body.data.connections[0] };
  await srv.waitReady(other.db.id);
  assert.ok((await psql(other.conn.endpoints.pooled.connectionString)).ok);
  const del = await srv.api('DELETE', `/v1/databases/${other.db.id}`);
  assert.equal(del.status, 204);
  // the other database is gone from the pooled endpoint ...
  assert.ok(!(await psql(other.conn.endpoints.pooled.connectionString)).ok);
  // ... and this client's session was never dropped
  const r = await c.query('select count(*)::int as n from keep');
  assert.equal(r.rows[0].n, 1);
  assert.equal(errored, null);
  await c.end();
});

test('PgBouncer killed: the pooled endpoint is back within a few seconds', async () => {
  const { conn } = await srv.createDatabase('phoenix');
  const cs = conn.endpoints.pooled.connectionString;
  assert.ok((await psql(cs)).ok);
  const pid = Number(readFileSync(join(srv.home, 'pooler/pgbouncer.pid'), 'utf8').trim());
  process.kill(pid, 'SIGKILL');
  await sleep(100);
  assert.ok(!(await psql(cs)).ok);
  const t = await within(8000, async () => (await psql(cs)).ok);
  assert.ok(t < 8000, 'pooled endpoint did not come back');
  const newPid = Number(readFileSync(join(srv.home, 'pooler/pgbouncer.pid'), 'utf8').trim());
  assert.notEqual(newPid, pid);
});

test('PgBouncer outlives a kill -9 of pgfleet and is adopted', async () => {
  const { conn } = await srv.createDatabase('adopt');
  const cs = conn.endpoints.pooled.connectionString;
  const pid = Number(readFileSync(join(srv.home, 'pooler/pgbouncer.pid'), 'utf8').trim());
  await srv.kill9();
  assert.ok((await psql(cs)).ok, 'pooled endpoint serves while pgfleet is down');
  await srv.start();
  await sleep(500);
  assert.ok((await psql(cs)).ok);
  const again = Number(readFileSync(join(srv.home, 'pooler/pgbouncer.pid'), 'utf8').trim());
  assert.equal(again, pid, 'the running PgBouncer was adopted, not started twice');
  assert.match(srv.log(), /pooler: adopted running PgBouncer/);
  // a change after adoption still reaches it
  const made = await srv.client.POST('/v1/connections', { body: { databaseId: conn.database.id, name: 'after' } });
  assert.ok((await psql(made.data.data.endpoints.pooled.connectionString)).ok);
});
