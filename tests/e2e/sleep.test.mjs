// Sleep and wake (issue 11): with --suspend-after 1 an idle database sleeps (no postmaster,
// its status stays ready); the first connection, direct or pooled, psql or pg, wakes it; 50
// first connections at once share one start; an idle session or an idle-in-transaction
// pooled client keeps it awake; credentials, backups, restore, clone and delete work on a
// sleeping database; the usage sampler and /metrics leave it asleep; its port is held
// asleep or awake; a cancel request reaches its server; sessions survive kill -9 of serve.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { useServer } from './lib/fixture.mjs';
import { sleepProbes } from './lib/sleep.mjs';
import { cli } from './lib/server.mjs';
import { call, expectStatus, raw, waitReady, uniq } from './lib/api.mjs';
import { connect, closeQuietly, psql, sql } from './lib/pg.mjs';
import { freePort, until, sleep, procsMatching, instanceDir } from './lib/procs.mjs';

// Plaintext is allowed from loopback clients here (--tls-mode loopback-optional, the default
// with a loopback public host), and 127.0.0.2 counts as a remote client's address (a test
// hook of the data path): TLS is required of it.

process.env.PGFLEET_TEST_REMOTE_ADDR = '127.0.0.2';
const metricsPort = await freePort();
const ctx = useServer('sleep', {
  extraArgs: ['--suspend-after', '1', '--usage-interval', '1', '--metrics-listen', `127.0.0.1:${metricsPort}`],
});
const S = { clients: [] };
after(async () => { for (const c of S.clients) await closeQuietly(c); });

const direct = (conn) => conn.endpoints.direct.connectionString;
const pooled = (conn) => conn.endpoints.pooled.connectionString;
const { running, marked, asleep, waitAsleep, metrics } = sleepProbes(ctx, metricsPort);

async function newDatabase(name) {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq(name) } }), 201).data;
  await waitReady(ctx.c, p.database.id);
  return { db: p.database, conn: p.database.connections[0], project: p };
}

function psqlTry(cs, command = 'SELECT 1') {
  return new Promise((resolve) => {
    execFile('psql', [cs, '-XAtqc', command], { timeout: 30000, env: { ...process.env, PGCONNECT_TIMEOUT: '20' } },
      (err, stdout, stderr) => resolve({ ok: !err, out: err ? String(stderr || err.message) : stdout.trim() }));
  });
}

function bindFails(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', (e) => resolve(e.code));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve('bound')));
  });
}

ctx.it('an idle database sleeps: no postmaster, status ready, port still held', async () => {
  const { db, conn, project } = await newDatabase('idle');
  S.db = db;
  S.project = project;
  S.conn = conn;
  assert.equal(await psql(direct(conn), 'SELECT 1'), '1');
  assert.equal(await bindFails(db.connections[0].endpoints.direct.port), 'EADDRINUSE', 'awake: the port is held');
  await waitAsleep(db.id);
  const got = expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: db.id } } }), 200).data;
  assert.equal(got.status, 'ready');
  assert.equal(await bindFails(conn.endpoints.direct.port), 'EADDRINUSE', 'asleep: the port is held');
  assert.equal(await bindFails(conn.endpoints.direct.port, '0.0.0.0'), 'EADDRINUSE', 'asleep: on every address');
});

ctx.it('the usage sampler, /metrics and `pgfleet status` leave it asleep', async () => {
  const m = await metrics();
  assert.ok(m.get('pgfleet_databases_asleep') >= 1, 'asleep gauge');
  await sleep(2500); // two passes of the 1 s usage sampler
  await metrics();
  const status = await cli(['status', '--home', ctx.server.home], { full: true });
  assert.match(status, new RegExp(`^${S.db.id}\\s+ready\\s+asleep\\s`, 'm'), status);
  assert.ok(asleep(S.db.id), 'still asleep after the sampler and /metrics');
});

ctx.it('wake through the direct endpoint with psql and pg, then through the pooled one', async () => {
  const t0 = Date.now();
  assert.equal(await psql(direct(S.conn), 'SELECT 41 + 1'), '42');
  const wakeMs = Date.now() - t0;
  console.log(`# direct wake + psql: ${wakeMs} ms`);
  assert.ok(running(S.db.id));
  // the woken server is on the socket every server uses, and serve timed its start inside
  // the client's wait
  assert.ok(fs.existsSync(path.join(ctx.server.home, 'run', S.db.id, '.s.PGSQL.5432')), 'socket .s.PGSQL.5432');
  const startsLogged = () => [...ctx.server.log().matchAll(new RegExp(`db=${S.db.id} msg="awake: the server started in (\\d+) ms"`, 'g'))];
  assert.ok(await until(async () => startsLogged().length >= 1, { timeoutMs: 10000 }), 'serve logged the wake');
  const starts = startsLogged();
  assert.ok(Number(starts.at(-1)[1]) <= wakeMs, `the server's start (${starts.at(-1)[1]} ms) is part of the wake (${wakeMs} ms)`);
  await waitAsleep(S.db.id);
  const c = await connect(direct(S.conn), { timeoutMs: 30000 });
  assert.equal((await c.query('SELECT 7 AS n')).rows[0].n, 7);
  await closeQuietly(c);
  await waitAsleep(S.db.id);
  assert.equal(await psql(pooled(S.conn), 'SELECT 2'), '2');
  await waitAsleep(S.db.id);
  const p = await connect(pooled(S.conn), { timeoutMs: 30000 });
  assert.equal((await p.query('SELECT 3 AS n')).rows[0].n, 3);
  await closeQuietly(p);
  const m = await metrics();
  assert.ok(m.get('pgfleet_wakes_total') >= 4, `wakes: ${m.get('pgfleet_wakes_total')}`);
});

// (direct ones up to the data path's cap: 5 while servers allow 20 connections)
ctx.it('50 concurrent first connections all succeed, with one start', async () => {
  await waitAsleep(S.db.id);
  const before = (await metrics()).get('pgfleet_wakes_total');
  const rs = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
    const c = await connect(i % 10 === 0 ? direct(S.conn) : pooled(S.conn), { timeoutMs: 30000 });
    try { return (await c.query('SELECT $1::int AS i', [i])).rows[0].i; } finally { await closeQuietly(c); }
  }));
  assert.deepEqual(rs, Array.from({ length: 50 }, (_, i) => i));
  assert.equal((await metrics()).get('pgfleet_wakes_total') - before, 1, 'one start');
});

ctx.it('an idle direct session keeps it awake; an idle-in-transaction pooled client too, an idle pooled one not', async () => {
  const c = await connect(direct(S.conn), { timeoutMs: 30000 });
  await sleep(3500);
  assert.ok(running(S.db.id), 'asleep under an idle direct session');
  await closeQuietly(c);
  await waitAsleep(S.db.id);
  const p = await connect(pooled(S.conn), { timeoutMs: 30000 });
  S.clients.push(p);
  await p.query('BEGIN');
  await p.query('SELECT 1');
  await sleep(3500);
  assert.ok(running(S.db.id), 'asleep under a pooled client inside a transaction');
  await p.query('COMMIT');
  await waitAsleep(S.db.id, 'with an idle pooled client');
  assert.equal((await p.query('SELECT 5 AS n')).rows[0].n, 5, 'the idle pooled client wakes it');
});

ctx.it('credential create, rotate and delete on a sleeping database take effect at once', async () => {
  await waitAsleep(S.db.id);
  const made = expectStatus(await call(ctx.c, 'POST', '/v1/connections', { body: { databaseId: S.db.id, name: 'sleepy' } }), 201).data;
  assert.equal(await psql(direct(made), 'SELECT 1'), '1', 'the new credential works');
  await waitAsleep(S.db.id);
  const fresh = expectStatus(await call(ctx.c, 'POST', '/v1/connections/{id}/rotate', { params: { path: { id: made.id } } }), 200).data;
  const old = await psqlTry(direct(made));
  assert.ok(!old.ok, 'the old password is refused');
  assert.equal(await psql(direct(fresh), 'SELECT 1'), '1');
  assert.equal(await psql(pooled(fresh), 'SELECT 1'), '1');
  await waitAsleep(S.db.id);
  expectStatus(await call(ctx.c, 'DELETE', '/v1/connections/{id}', { params: { path: { id: made.id } } }), 204);
  assert.ok(!(await psqlTry(direct(fresh))).ok, 'the deleted credential is refused');
});

ctx.it('backup, restore, clone and delete of a sleeping database', async () => {
  await sql(direct(S.conn), 'CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t VALUES (1)');
  await waitAsleep(S.db.id);
  const r = await raw(ctx.server, 'POST', `/v1/databases/${S.db.id}/backups`, { json: {} });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const id = r.body.data.id;
  let b;
  const ok = await until(async () => {
    const list = expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId: S.db.id } } }), 200).data;
    b = list.find((x) => x.id === id);
    return b && b.status !== 'running';
  }, { timeoutMs: 90000, intervalMs: 250 });
  assert.ok(ok && b.status === 'completed', `backup: ${JSON.stringify(b)}`);
  await waitAsleep(S.db.id);
  const clone = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name: 'clone', source: { type: 'database', databaseId: S.db.id } } }), 201).data;
  await waitReady(ctx.c, clone.id, { timeoutMs: 90000 });
  assert.deepEqual((await sql(direct(clone.connections[0]), 'SELECT x FROM t')).map((x) => x.x), [1]);
  await waitAsleep(S.db.id);
  const rs = expectStatus(await call(ctx.c, 'POST', '/v1/databases/{targetDatabaseId}/restore', { params: { path: { targetDatabaseId: S.db.id } }, body: { source: { type: 'backup', databaseId: S.db.id, backupId: id } } }), 200).data;
  assert.equal(rs.status, 'recovering');
  await waitReady(ctx.c, S.db.id, { timeoutMs: 90000 });
  assert.deepEqual((await sql(direct(S.conn), 'SELECT x FROM t')).map((x) => x.x), [1]);
  await waitAsleep(clone.id, 'the clone');
  expectStatus(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: clone.id } } }), 204);
  assert.equal(await bindFails(clone.connections[0].endpoints.direct.port), 'bound', 'a deleted database frees its port');
  assert.ok(!fs.existsSync(instanceDir(ctx.server.home, clone.id)));
});

ctx.it('a cancel request reaches the right server', async () => {
  const { conn } = await newDatabase('cancel');
  const child = spawn('psql', [direct(conn), '-XAtqc', 'SELECT pg_sleep(30)'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  // (pg_stat_activity hides another login role's query from the owner role the session runs
  // as: wait for the query by time)
  await sleep(2000);
  const t0 = Date.now();
  child.kill('SIGINT'); // psql sends a CancelRequest on a new connection to the same port
  const code = await new Promise((resolve) => child.once('exit', resolve));
  assert.ok(Date.now() - t0 < 10000, 'cancelled in time');
  assert.notEqual(code, 0);
  assert.match(err, /canceling statement due to user request/);
});

ctx.it('direct and pooled sessions survive kill -9 of serve; the restarted serve adopts the data path', async () => {
  const { conn } = await newDatabase('survive');
  const d = await connect(direct(conn));
  const p = await connect(pooled(conn));
  S.clients.push(d, p);
  await p.query('SELECT 1');
  const dpBefore = procsMatching(`datapath --home ${ctx.server.home}`).map((x) => x.pid);
  assert.equal(dpBefore.length, 1);
  await ctx.server.kill9();
  assert.equal((await d.query('SELECT 11 AS n')).rows[0].n, 11, 'direct session while serve is down');
  assert.equal((await p.query('SELECT 12 AS n')).rows[0].n, 12, 'pooled session while serve is down');
  await ctx.server.restart();
  assert.deepEqual(procsMatching(`datapath --home ${ctx.server.home}`).map((x) => x.pid), dpBefore, 'the same data path');
  assert.match(fs.readFileSync(ctx.server.logFile, 'utf8'), /adopted the running data path/);
  assert.equal((await d.query('SELECT 13 AS n')).rows[0].n, 13);
  assert.equal((await p.query('SELECT 14 AS n')).rows[0].n, 14);
  assert.equal(d.lastError, null);
  assert.equal(p.lastError, null);
  assert.equal(await bindFails(conn.endpoints.direct.port), 'EADDRINUSE', 'the port is still held');
  assert.equal(await psql(direct(S.conn), 'SELECT 1'), '1', 'a sleeping database wakes after the restart');
  await closeQuietly(d);
  await closeQuietly(p);
});

ctx.it('a killed data path is started again and gets the ports back', async () => {
  const [dp] = procsMatching(`datapath --home ${ctx.server.home}`);
  process.kill(dp.pid, 'SIGKILL');
  const back = await until(async () => procsMatching(`datapath --home ${ctx.server.home}`).some((x) => x.pid !== dp.pid), { timeoutMs: 20000 });
  assert.ok(back, 'no new data path');
  const ok = await until(async () => (await psqlTry(direct(S.conn))).ok, { timeoutMs: 30000, intervalMs: 250 });
  assert.ok(ok, 'the database is reachable through the new data path');
  assert.equal(await bindFails(S.conn.endpoints.direct.port), 'EADDRINUSE');
});

// The first byte the data path answers a plaintext StartupMessage (or an SSLRequest) with,
// from a given local address: 'R' (authentication asked), 'E' (an error) or 'S'.
function firstAnswer(port, localAddress, { ssl = false } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    let got = Buffer.alloc(0);
    s.setTimeout(20000, () => { s.destroy(); reject(new Error('no answer')); });
    s.on('error', reject);
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (ssl || got.length > 5) { s.destroy(); resolve(got); }
    });
    s.on('connect', () => {
      if (ssl) return s.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
      const body = Buffer.from(`user\0${new URL(direct(S.conn)).username}\0database\0postgres\0\0`);
      const head = Buffer.alloc(8);
      head.writeUInt32BE(body.length + 8, 0);
      head.writeUInt32BE(196608, 4);
      s.write(Buffer.concat([head, body]));
    });
    s.on('close', () => resolve(got));
  });
}

ctx.it('TLS is required from a non-loopback client address; plaintext from loopback where allowed', async () => {
  const port = S.conn.endpoints.direct.port;
  const local = await firstAnswer(port, '127.0.0.1');
  assert.equal(String.fromCharCode(local[0]), 'R', 'loopback plaintext reaches authentication');
  const remote = await firstAnswer(port, '127.0.0.2');
  assert.equal(String.fromCharCode(remote[0]), 'E', 'a remote plaintext client gets an error');
  assert.match(remote.toString('latin1'), /SSL required/);
  const tls = await firstAnswer(port, '127.0.0.2', { ssl: true });
  assert.equal(String.fromCharCode(tls[0]), 'S', 'a remote client may ask for TLS');
  assert.match(fs.readFileSync(path.join(ctx.server.home, 'datapath.log'), 'utf8'), /refused a plaintext connection from (::ffff:)?127\.0\.0\.2/);
});

ctx.itShutsDownCleanly();
