// Crash and restart: kill -9 in the middle of provisioning and deleting, SIGTERM, adoption of
// running instances, no orphan process, directory or port.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, expectError, waitReady, listAll, uniq } from './lib/api.mjs';
import { sql } from './lib/pg.mjs';
import { postmasterPidFile, alive, instanceDirs, instanceOf, instanceDir, portClosed, portBindable, until, sleep } from './lib/procs.mjs';

const ctx = useServer('recovery');
const S = { cs: {} }; // S.cs: database id -> direct connection string (shown once, at creation)

const getDb = (databaseId) => call(ctx.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId } } });
const csOf = (db) => db.connections.find((c) => c.endpoints?.direct?.connectionString)?.endpoints.direct;

async function createDb(name) {
  const d = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name } }), 201).data;
  if (csOf(d)) S.cs[d.id] = csOf(d).connectionString;
  return d;
}

// Waits until no database is provisioning/recovering and every instance matches the catalog.
// Returns the final list.
async function settle(what, { timeoutMs = 60000 } = {}) {
  let dbs;
  const ok = await until(async () => {
    dbs = await listAll(ctx.c, '/v1/databases');
    return dbs.every((d) => d.status === 'ready' || d.status === 'failure');
  }, { timeoutMs, intervalMs: 300 });
  assert.ok(ok, `${what}: databases still in transition after ${timeoutMs} ms: ${dbs.map((d) => `${d.id}=${d.status}`).join(', ')}`);
  return dbs;
}

// The invariants after a restart: postmasters == ready databases (one each), instance
// directories only for databases that exist, nothing for deleted ones.
async function assertNoOrphans(what, deleted = []) {
  let dbs;
  let detail = '';
  const ok = await until(async () => {
    dbs = await listAll(ctx.c, '/v1/databases');
    const ready = dbs.filter((d) => d.status === 'ready').map((d) => d.id).sort();
    const pms = ctx.server.postmasters();
    const pmIds = pms.map((p) => p.dbId).sort();
    const existing = new Set(dbs.map((d) => d.id));
    const dirs = instanceDirs(ctx.server.home);
    const orphanDirs = dirs.filter((d) => !existing.has(d));
    detail = `ready=${JSON.stringify(ready)} postmasters=${JSON.stringify(pms.map((p) => `${p.dbId}:${p.pid}`))} orphanDirs=${JSON.stringify(orphanDirs)}`;
    const runLeft = deleted.filter((id) => fs.existsSync(path.join(ctx.server.home, 'run', instanceOf(ctx.server.home, id))));
    detail += ` runDirsOfDeleted=${JSON.stringify(runLeft)}`;
    return JSON.stringify(pmIds) === JSON.stringify(ready) && orphanDirs.length === 0 && deleted.every((id) => !dirs.includes(id)) && runLeft.length === 0;
  }, { timeoutMs: 30000, intervalMs: 300 });
  assert.ok(ok, `${what}: one postgres per ready database, no orphan process or directory: ${detail}`);
  return dbs;
}

async function assertPortFree(port, what) {
  const ok = await until(async () => (await portClosed(port)) && (await portBindable(port)), { timeoutMs: 30000, intervalMs: 300 });
  assert.ok(ok, `${what}: port ${port} not free`);
}

ctx.it('setup: project + 2 more databases, all ready, with data', async () => {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('rec') } }), 201).data;
  S.project = p;
  S.d0 = p.database;
  S.cs[S.d0.id] = csOf(S.d0).connectionString;
  S.d1 = await createDb('keep');
  S.d2 = await createDb('to-delete');
  for (const d of [S.d0, S.d1, S.d2]) await waitReady(ctx.c, d.id);
  await sql(csOf(S.d0).connectionString, 'CREATE TABLE survives (v text); INSERT INTO survives VALUES (\'before crash\')');
});

ctx.it('kill -9 while one database provisions and one deletes; restart: each ends ready, failure or gone; instances adopted', async () => {
  const home = ctx.server.home;
  const pid0 = postmasterPidFile(home, S.d0.id);
  const pid1 = postmasterPidFile(home, S.d1.id);
  assert.ok(pid0 && alive(pid0), `postmaster of ${S.d0.id} running before the crash (pid file: ${pid0})`);
  assert.ok(pid1 && alive(pid1));
  const port2 = csOf(S.d2).port;

  const dp = await createDb('in-flight');
  expectStatus(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: S.d2.id } } }), 204);
  await ctx.server.kill9();
  S.dp = dp;

  // the instances survive pgfleet's death (own session)
  assert.ok(alive(pid0), 'postgres died with pgfleet (should run in its own session)');

  await ctx.server.start();
  const dbs = await settle('after kill -9');
  const byId = Object.fromEntries(dbs.map((d) => [d.id, d]));
  assert.ok(!byId[S.d2.id], `deleted database ${S.d2.id} came back: ${byId[S.d2.id]?.status}`);
  expectError(await getDb(S.d2.id), 404, { what: 'deleted before the crash' });
  assert.ok(byId[dp.id], `database ${dp.id} acknowledged with 201 before the crash was lost`);
  assert.ok(['ready', 'failure'].includes(byId[dp.id].status));
  assert.equal(byId[S.d0.id]?.status, 'ready');
  assert.equal(byId[S.d1.id]?.status, 'ready');

  // adopted, not started twice
  assert.equal(postmasterPidFile(home, S.d0.id), pid0, 'restart started a new postmaster instead of adopting the running one');
  assert.equal(postmasterPidFile(home, S.d1.id), pid1);
  assert.ok(alive(pid0) && alive(pid1));
  const pms = ctx.server.postmasters();
  assert.equal(pms.filter((p) => p.dbId === S.d0.id).length, 1, `postmasters for ${S.d0.id}: ${JSON.stringify(pms)}`);

  await assertNoOrphans('after kill -9', [S.d2.id]);
  await assertPortFree(port2, 'deleted database');
  const rows = await sql(csOf(S.d0).connectionString, 'SELECT v FROM survives');
  assert.deepEqual(rows.map((r) => r.v), ['before crash']);
  if (byId[dp.id].status === 'ready') await sql(csOf(dp).connectionString, 'SELECT 1');
}, { timeout: 180000 });

ctx.it('kill -9 with creates and a delete in flight (not yet answered); restart settles with no orphans', async () => {
  const victim = S.d1;
  const victimPort = csOf(victim).port;
  for (const delayMs of [5, 40]) {
    // requests the server may or may not have acknowledged when it dies
    const creates = [0, 1].map((i) => call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name: `burst-${delayMs}-${i}` } }).then((r) => r, (e) => ({ lost: e })));
    const del = delayMs === 40 && !S.victimGone
      ? call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: victim.id } } }).then((r) => r, (e) => ({ lost: e }))
      : null;
    await sleep(delayMs);
    await ctx.server.kill9();
    const answered = (await Promise.all(creates)).filter((r) => !r.lost);
    for (const r of answered) {
      const d = expectStatus(r, 201, 'POST /v1/databases answered before the crash').data;
      if (csOf(d)) S.cs[d.id] = csOf(d).connectionString;
    }
    const delRes = del ? await del : null;
    await ctx.server.start();
    const dbs = await settle(`after kill -9 at ${delayMs} ms`);
    const ids = new Set(dbs.map((d) => d.id));
    for (const r of answered) assert.ok(ids.has(r.body.data.id), `database ${r.body.data.id} acknowledged (201) before the crash was lost`);
    if (delRes && !delRes.lost) {
      expectStatus(delRes, 204, 'DELETE answered before the crash');
      assert.ok(!ids.has(victim.id), 'a database whose DELETE was acknowledged came back');
    }
    if (!ids.has(victim.id)) S.victimGone = true;
    await assertNoOrphans(`after kill -9 at ${delayMs} ms`, S.victimGone ? [victim.id] : []);
    if (S.victimGone) await assertPortFree(victimPort, 'deleted database');
    for (const d of dbs.filter((x) => x.status === 'ready' && S.cs[x.id])) await sql(S.cs[d.id], 'SELECT 1');
  }
}, { timeout: 180000 });

ctx.it('SIGTERM stops every instance; the next start brings them back and connection strings work again', async () => {
  const before = await listAll(ctx.c, '/v1/databases');
  const ready = before.filter((d) => d.status === 'ready').map((d) => d.id);
  assert.ok(ready.includes(S.d0.id));
  await ctx.server.stop(); // exit 0 and clean log asserted
  const pms = ctx.server.postmasters();
  assert.deepEqual(pms, [], 'postgres processes of this home after SIGTERM');
  assert.deepEqual(ctx.server.processes().map((p) => p.argv.join(' ')), [], 'processes of this home after SIGTERM');
  for (const id of ready) {
    assert.ok(!fs.existsSync(path.join(instanceDir(ctx.server.home, id), 'data', 'postmaster.pid')), `${id}: postmaster.pid left behind (not a clean shutdown)`);
  }
  await ctx.server.start();
  for (const id of ready) await waitReady(ctx.c, id, { timeoutMs: 60000 });
  const cs = csOf(S.d0).connectionString;
  const ok = await until(async () => {
    try { return (await sql(cs, 'SELECT v FROM survives')).length === 1; } catch { return false; }
  }, { timeoutMs: 30000 });
  assert.ok(ok, 'the connection string works again after restart, with the data');
  await assertNoOrphans('after SIGTERM and start');
}, { timeout: 180000 });

ctx.it('a database server that dies (kill -9 of its postmaster) is restarted by pgfleet, data intact', async () => {
  const home = ctx.server.home;
  const pid = postmasterPidFile(home, S.d0.id);
  assert.ok(pid && alive(pid), `postmaster of ${S.d0.id} running (pid file: ${pid})`);
  process.kill(pid, 'SIGKILL');
  assert.ok(await until(() => !alive(pid), { timeoutMs: 10000 }), 'postmaster did not die');
  const cs = csOf(S.d0).connectionString;
  const t0 = Date.now();
  const ok = await until(async () => {
    try { return (await sql(cs, 'SELECT v FROM survives')).length === 1; } catch { return false; }
  }, { timeoutMs: 30000, intervalMs: 200 });
  assert.ok(ok, 'the connection string works again after the server was killed, with the data');
  const pid2 = postmasterPidFile(home, S.d0.id);
  assert.ok(pid2 && pid2 !== pid && alive(pid2), `a new postmaster runs (${pid} -> ${pid2})`);
  console.log(`# restarted ${S.d0.id} ${Date.now() - t0} ms after its postmaster was killed`);
  assert.equal(expectStatus(await getDb(S.d0.id), 200).data.status, 'ready');
  await assertNoOrphans('after a postmaster was killed');
}, { timeout: 60000 });

ctx.itShutsDownCleanly();
