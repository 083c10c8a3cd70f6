// Connections: real PostgreSQL sessions with every connection string the API returns,
// credentials lifecycle (create, rotate, delete) and what a connection role may not do.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, expectError, waitReady, listAll, connectionStrings, uniq } from './lib/api.mjs';
import { connect, closeQuietly, sql, psql, connectFails, queryFails, passwordOf, redact } from './lib/pg.mjs';
import { until } from './lib/procs.mjs';
import fs from 'node:fs';
import path from 'node:path';

const ctx = useServer('connections');
const S = { passwords: new Set(), clients: [] };

function remember(conn, what) {
  const direct = conn.endpoints?.direct?.connectionString;
  assert.ok(direct, `${what}: endpoints.direct.connectionString missing: ${JSON.stringify(conn)}`);
  const pw = passwordOf(direct);
  assert.ok(pw && pw.length >= 32, `${what}: password of at least 32 characters in the connection string, got ${pw?.length}`);
  S.passwords.add(pw);
  if (conn.pass) S.passwords.add(conn.pass);
  if (conn.directConnection?.pass) S.passwords.add(conn.directConnection.pass);
  return direct;
}

async function exercise(cs, table, what) {
  const c = await connect(cs);
  try {
    await c.query(`CREATE TABLE IF NOT EXISTS ${table} (id int PRIMARY KEY, v text)`);
    const id = Math.floor(Math.random() * 1e9);
    await c.query(`INSERT INTO ${table} VALUES ($1, $2)`, [id, what]);
    const { rows } = await c.query(`SELECT v FROM ${table} WHERE id = $1`, [id]);
    assert.equal(rows[0]?.v, what, `${what}: row read back`);
  } finally {
    await closeQuietly(c);
  }
}

after(async () => { for (const c of S.clients) await closeQuietly(c); });

ctx.it('setup: project with a ready default database', async () => {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('conn') } }), 201).data;
  S.project = p;
  S.db = p.database;
  S.conn0 = p.database.connections.find((c) => c.endpoints?.direct?.connectionString);
  assert.ok(S.conn0, 'first connection with a direct connection string');
  S.cs0 = remember(S.conn0, 'first connection');
  assert.ok(p.database.directConnection?.pass, 'database.directConnection.pass');
  S.passwords.add(p.database.directConnection.pass);
  await waitReady(ctx.c, S.db.id);
});

ctx.it('every returned connection string works (pg): CREATE TABLE, INSERT, SELECT; psql as is', async () => {
  const direct = S.conn0.endpoints.direct;
  const u = new URL(direct.connectionString);
  assert.ok(/^postgres(ql)?:$/.test(u.protocol), `postgres URL: ${redact(direct.connectionString)}`);
  assert.equal(u.hostname, direct.host, 'endpoints.direct.host matches the connection string');
  assert.equal(Number(u.port), direct.port, 'endpoints.direct.port matches the connection string');
  assert.equal(direct.host, '127.0.0.1', '--public-host is used as the host');
  const dc = S.project.database.directConnection;
  assert.equal(decodeURIComponent(u.username), dc.user, 'directConnection.user is the connection string user');
  assert.equal(passwordOf(direct.connectionString), dc.pass, 'directConnection.pass is the connection string password');
  const all = [...connectionStrings(S.conn0)];
  if (typeof S.project.database.connectionString === 'string' && /^postgres(ql)?:\/\//.test(S.project.database.connectionString)) {
    all.push({ kind: 'database.connectionString', cs: S.project.database.connectionString });
  }
  for (const { kind, cs } of all) await exercise(cs, 't', `via ${kind}`);
  const out = await psql(direct.connectionString, 'SELECT count(*) FROM t');
  assert.ok(Number(out) >= 1, `psql count: ${out}`);
});

ctx.it('POST /v1/databases/{id}/connections: 200 (per the contract) and the new role sees the same table', async () => {
  const r = await call(ctx.c, 'POST', '/v1/databases/{databaseId}/connections', { params: { path: { databaseId: S.db.id } }, body: { name: uniq('second') } });
  const c2 = expectStatus(r, 200).data;
  assert.equal(c2.database.id, S.db.id);
  S.cs2 = remember(c2, 'POST /v1/databases/{id}/connections');
  S.c2 = c2;
  assert.notEqual(passwordOf(S.cs2), passwordOf(S.cs0));
  const rows = await sql(S.cs2, 'SELECT count(*)::int AS n, session_user AS su FROM t');
  assert.ok(rows[0].n >= 1, 'second connection sees the rows of the first');
  assert.equal(rows[0].su, decodeURIComponent(new URL(S.cs2).username));
  const first = await sql(S.cs0, 'SELECT session_user AS su');
  assert.notEqual(rows[0].su, first[0].su, 'each connection is its own login role');
  await exercise(S.cs2, 't', 'second connection');
  await exercise(S.cs2, 't2', 'table made by the second connection');
  await sql(S.cs0, 'SELECT * FROM t2'); // and the first sees what the second created
});

ctx.it('POST /v1/connections: 201 and works the same', async () => {
  const r = await call(ctx.c, 'POST', '/v1/connections', { body: { databaseId: S.db.id, name: uniq('third') } });
  const c3 = expectStatus(r, 201).data;
  assert.equal(c3.database.id, S.db.id);
  S.cs3 = remember(c3, 'POST /v1/connections');
  S.c3 = c3;
  const rows = await sql(S.cs3, 'SELECT count(*)::int AS n FROM t');
  assert.ok(rows[0].n >= 1);
  const g = expectStatus(await call(ctx.c, 'GET', '/v1/connections/{id}', { params: { path: { id: c3.id } } }), 200).data;
  assert.equal(g.id, c3.id);
  assert.equal(g.name, c3.name);
});

ctx.it('listing connections never shows a password: /v1/connections, ?databaseId=, /v1/databases/{id}/connections, GETs', async () => {
  const responses = [];
  const all = await listAll(ctx.c, '/v1/connections');
  responses.push(all);
  const ids = all.map((x) => x.id);
  for (const id of [S.conn0.id, S.c2.id, S.c3.id]) assert.ok(ids.includes(id), `GET /v1/connections contains ${id}`);
  const byDb = await listAll(ctx.c, '/v1/connections', { params: { query: { databaseId: S.db.id } } });
  responses.push(byDb);
  assert.deepEqual(byDb.map((x) => x.id).sort(), [S.conn0.id, S.c2.id, S.c3.id].sort(), '?databaseId= lists exactly this database\'s connections');
  const nested = await listAll(ctx.c, '/v1/databases/{databaseId}/connections', { params: { path: { databaseId: S.db.id } } });
  responses.push(nested);
  assert.deepEqual(nested.map((x) => x.id).sort(), [S.conn0.id, S.c2.id, S.c3.id].sort());
  for (const id of [S.conn0.id, S.c2.id]) {
    responses.push(expectStatus(await call(ctx.c, 'GET', '/v1/connections/{id}', { params: { path: { id } } }), 200));
  }
  responses.push(expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: S.db.id } } }), 200));
  responses.push(await listAll(ctx.c, '/v1/databases'));
  responses.push(await listAll(ctx.c, '/v1/projects/{projectId}/databases', { params: { path: { projectId: S.project.id } } }));
  const text = JSON.stringify(responses);
  for (const pw of S.passwords) assert.ok(!text.includes(pw), 'a password appears in a list/GET response');
  for (const item of [...all, ...byDb, ...nested]) {
    assert.ok(!item.directConnection?.pass, `connection ${item.id} in a list carries directConnection.pass`);
  }
});

ctx.it('rotate: 200, the new password works at once, the old one is refused', async () => {
  const hold = await connect(S.cs2); // a session opened with the old password
  S.clients.push(hold);
  const r = await call(ctx.c, 'POST', '/v1/connections/{id}/rotate', { params: { path: { id: S.c2.id } } });
  const rc = expectStatus(r, 200).data;
  assert.equal(rc.id, S.c2.id);
  const newCs = remember(rc, 'rotate');
  assert.notEqual(passwordOf(newCs), passwordOf(S.cs2), 'rotate must change the password');
  assert.equal(new URL(newCs).username, new URL(S.cs2).username, 'rotate keeps the role');
  const rows = await sql(newCs, 'SELECT count(*)::int AS n FROM t'); // at once: no retry
  assert.ok(rows[0].n >= 1);
  const err = await connectFails(S.cs2, 'old password after rotate');
  assert.equal(err.code, '28P01', `old password: expected invalid_password (28P01), got ${err.code} ${err.message}`);
  S.cs2 = newCs;
});

ctx.it('delete connection: 204, 404 after, its role cannot log in, its open session ends', async () => {
  const open = await connect(S.cs3);
  S.clients.push(open);
  await open.query('SELECT 1');
  const user = decodeURIComponent(new URL(S.cs3).username);
  expectStatus(await call(ctx.c, 'DELETE', '/v1/connections/{id}', { params: { path: { id: S.c3.id } } }), 204);
  expectError(await call(ctx.c, 'GET', '/v1/connections/{id}', { params: { path: { id: S.c3.id } } }), 404, { what: 'GET after DELETE' });
  expectError(await call(ctx.c, 'DELETE', '/v1/connections/{id}', { params: { path: { id: S.c3.id } } }), 404, { what: 'second DELETE' });
  const ids = (await listAll(ctx.c, '/v1/connections', { params: { query: { databaseId: S.db.id } } })).map((x) => x.id);
  assert.ok(!ids.includes(S.c3.id));
  // docs/api.md: delete answers once the change is live: the role is gone at once; the
  // session is terminated (a backend exits asynchronously after pg_terminate_backend, so
  // allow it a second)
  const roles = await sql(S.cs0, 'SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1', [user]);
  assert.equal(roles[0].n, 0, `role ${user} still exists when DELETE answered 204`);
  let sessionErr = null;
  const ended = await until(async () => {
    try {
      await open.query('SELECT 1');
      return false;
    } catch (e) {
      sessionErr = e;
      return true;
    }
  }, { timeoutMs: 1000, intervalMs: 100 });
  assert.ok(ended, 'an open session of the deleted connection still runs queries 1 s after DELETE answered');
  assert.ok(sessionErr);
  const err = await connectFails(S.cs3, 'deleted connection');
  assert.ok(['28P01', '28000'].includes(err.code), `deleted connection login: expected 28P01/28000, got ${err.code} ${err.message}`);
  const rows = await sql(S.cs0, 'SELECT count(*)::int AS n FROM t');
  assert.ok(rows[0].n >= 1, 'tables survive the deletion of a credential');
});

ctx.it('a connection role is no superuser and cannot read server files or run programs', async () => {
  const c = await connect(S.cs0);
  S.clients.push(c);
  try {
    const { rows } = await c.query('SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls FROM pg_roles r WHERE r.rolname = session_user');
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0], { rolsuper: false, rolcreatedb: false, rolcreaterole: false, rolreplication: false, rolbypassrls: false }, 'login role attributes');
    const cur = await c.query("SELECT current_setting('is_superuser') AS su");
    assert.equal(cur.rows[0].su, 'off');
    const checks = [
      ["COPY t FROM PROGRAM 'id'", 'COPY FROM PROGRAM'],
      ["COPY t TO PROGRAM 'cat > /dev/null'", 'COPY TO PROGRAM'],
      ["COPY t FROM '/etc/passwd'", 'COPY FROM a server file'],
      ["COPY t TO '/tmp/pgfleet-e2e-copy-out'", 'COPY TO a server file'],
      ["SELECT pg_read_file('/etc/passwd')", 'pg_read_file'],
      ["SELECT pg_read_binary_file('/etc/passwd')", 'pg_read_binary_file'],
      ["SELECT pg_ls_dir('.')", 'pg_ls_dir'],
      ["SELECT lo_import('/etc/passwd')", 'lo_import'],
      ['CREATE ROLE e2e_forbidden', 'CREATE ROLE'],
      ['ALTER SYSTEM SET work_mem = 1024', 'ALTER SYSTEM'],
      ['SET ROLE pgfleet_admin', 'SET ROLE pgfleet_admin'],
      ['CREATE EXTENSION IF NOT EXISTS file_fdw', 'CREATE EXTENSION file_fdw'],
    ];
    for (const [stmt, what] of checks) {
      const e = await queryFails(c, stmt, what);
      assert.ok(e.code && e.code !== '57P01', `${what}: unexpected error ${e.code} ${e.message}`);
      await c.query('SELECT 1'); // the session survives a refused statement
    }
  } finally {
    await closeQuietly(c);
  }
});

ctx.it('credentials of one database do not open another database', async () => {
  const d2 = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name: uniq('other') } }), 201).data;
  await waitReady(ctx.c, d2.id);
  const other = d2.connections.find((c) => c.endpoints?.direct?.connectionString);
  assert.ok(other, 'POST /v1/databases returned a connection string');
  const otherCs = remember(other, 'second database');
  await sql(otherCs, 'SELECT 1');
  const u = new URL(S.cs0);
  const o = new URL(otherCs);
  assert.notEqual(o.port, u.port, 'each database has its own port');
  u.port = o.port;
  u.pathname = o.pathname;
  const e = await connectFails(u.toString(), 'first database credentials on the second database');
  assert.ok(['28P01', '28000'].includes(e.code), `expected an authentication failure, got ${e.code} ${e.message}`);
});

ctx.it('the catalog (verifiers, token hashes) is readable by its owner only', async () => {
  for (const f of ['catalog.db', 'catalog.db-wal', 'catalog.db-shm']) {
    const p = path.join(ctx.server.home, f);
    if (!fs.existsSync(p)) continue;
    assert.equal((fs.statSync(p).mode & 0o777).toString(8), '600', `${f} mode`);
  }
});

ctx.itShutsDownCleanly();
