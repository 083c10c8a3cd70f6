// Backups, destructive restore, point-in-time restore, databases from a backup or a clone:
// real pgBackRest, the real SDK, every response checked against the contract.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { useServer } from './lib/fixture.mjs';
import { call, raw, expectStatus, expectError, waitReady, unknownLike, uniq } from './lib/api.mjs';
import { sql, connectFails } from './lib/pg.mjs';
import { until, sleep, instanceDir, instanceOf } from './lib/procs.mjs';

const ctx = useServer('backup');
const S = {};
const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';

const p = (databaseId) => ({ params: { path: { databaseId } } });
const listBackups = async (databaseId, query = {}) =>
  expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId }, query } }), 200);
const restore = (targetDatabaseId, source) =>
  call(ctx.c, 'POST', '/v1/databases/{targetDatabaseId}/restore', { params: { path: { targetDatabaseId } }, body: { source } });
const rows = async (cs, table = 't') => (await sql(cs, `SELECT x FROM ${table} ORDER BY x`)).map((r) => r.x);
const directCs = (conn) => conn.endpoints.direct.connectionString;

async function createDb(body) {
  const d = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, ...body } }), 201).data;
  return { db: d, cs: directCs(d.connections[0]) };
}

// Takes a backup now (extension) and waits until it is completed; returns it.
async function backupNow(databaseId, json = {}) {
  const r = await raw(ctx.server, 'POST', `/v1/databases/${databaseId}/backups`, { json });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const id = r.body.data.id;
  let b;
  const ok = await until(async () => {
    b = (await listBackups(databaseId)).data.find((x) => x.id === id);
    return b && b.status !== 'running';
  }, { timeoutMs: 60000, intervalMs: 200 });
  assert.ok(ok && b.status === 'completed', `backup ${id} of ${databaseId} did not complete: ${JSON.stringify(b)}`);
  return b;
}

// Waits until no backup of the database is running (the automatic one after create/restore).
async function backupsIdle(databaseId) {
  const ok = await until(async () => (await listBackups(databaseId)).data.every((b) => b.status !== 'running'), { timeoutMs: 60000, intervalMs: 200 });
  assert.ok(ok, `backups of ${databaseId} still running`);
}

// No archive_command of the database ever failed. A restore must archive only complete WAL
// of its new timeline: an incomplete copy of the segment being written, or an old segment
// recycled under a later name, makes the real segment fail (pgBackRest error 45) and stalls
// the archiver, so a backup waits for its WAL until archive-timeout.
function assertArchiveClean(databaseId) {
  const log = fs.readFileSync(path.join(instanceDir(ctx.server.home, databaseId), 'postgres.log'), 'utf8');
  const failed = log.split('\n').filter((l) => /archive command failed|ERROR: \[\d+\]/.test(l));
  assert.deepEqual(failed, [], `archiving of ${databaseId} failed`);
}

async function restoreAndWait(target, source) {
  const d = expectStatus(await restore(target, source), 200).data;
  assert.equal(d.status, 'recovering');
  assert.deepEqual(d.source, { type: 'backup', databaseId: source.databaseId, backupId: source.backupId });
  return waitReady(ctx.c, target, { timeoutMs: 90000 });
}

ctx.it('setup: a project whose database gets a full backup as soon as it is ready', async () => {
  // the project's create response is the foundation's (checked by lifecycle.test.mjs); this
  // file checks the backup endpoints' shapes
  const { data, response } = await ctx.c.POST('/v1/projects', { body: { name: uniq('bk') } });
  assert.equal(response.status, 201);
  const r = data.data;
  S.project = r;
  S.a = r.database.id;
  S.aCs = r.database.connections[0].endpoints.direct.connectionString;
  S.aConn = r.database.connections[0].id;
  await waitReady(ctx.c, S.a);
  const ok = await until(async () => (await listBackups(S.a)).data.some((b) => b.backupType === 'full' && b.status === 'completed'), { timeoutMs: 60000 });
  assert.ok(ok, 'no completed full backup after the database became ready');
  const list = await listBackups(S.a, { limit: 1 });
  assert.equal(list.meta.backupRetentionDays, 7);
  assert.equal(list.pagination.limit, 1);
  assert.ok(list.data[0].size > 0);
});

ctx.it('restore in place: exactly the backed-up rows; every live credential works, deleted ones stay deleted', async () => {
  await sql(S.aCs, 'CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)');
  const doomed = expectStatus(await call(ctx.c, 'POST', '/v1/databases/{databaseId}/connections', { ...p(S.a), body: { name: 'doomed' } }), 200).data;
  const bk = await backupNow(S.a);
  await sql(S.aCs, 'INSERT INTO t VALUES (3)');
  // after the backup: a new credential, a rotated one, a deleted one
  const late = expectStatus(await call(ctx.c, 'POST', '/v1/databases/{databaseId}/connections', { ...p(S.a), body: { name: 'late' } }), 200).data;
  const rot = expectStatus(await call(ctx.c, 'POST', '/v1/connections/{id}/rotate', { params: { path: { id: S.aConn } } }), 200).data;
  S.aCs = directCs(rot);
  expectStatus(await call(ctx.c, 'DELETE', '/v1/connections/{id}', { params: { path: { id: doomed.id } } }), 204);
  // PgBouncer now holds a server connection to the server the restore stops
  assert.deepEqual(await rows(rot.endpoints.pooled.connectionString), [1, 2, 3]);
  const t0 = Date.now();
  await restoreAndWait(S.a, { type: 'backup', databaseId: S.a, backupId: bk.id });
  console.log(`# in-place restore of a small database: ${Date.now() - t0} ms`);
  assert.deepEqual(await rows(S.aCs), [1, 2]);
  assert.deepEqual(await rows(directCs(late)), [1, 2]);
  // the pooled endpoint too: PgBouncer's server connections to the stopped server are gone
  assert.deepEqual(await rows(rot.endpoints.pooled.connectionString), [1, 2]);
  assert.deepEqual(await rows(late.endpoints.pooled.connectionString), [1, 2]);
  await connectFails(directCs(doomed), 'a connection deleted after the backup');
});

ctx.it('point-in-time restore to a moment between two inserts', async () => {
  await backupsIdle(S.a); // the full backup taken after the restore
  const base = (await listBackups(S.a)).data.find((b) => b.status === 'completed');
  await sql(S.aCs, 'INSERT INTO t VALUES (10)');
  await sleep(1200);
  const between = new Date().toISOString();
  await sleep(1200);
  await sql(S.aCs, 'INSERT INTO t VALUES (11)');
  await restoreAndWait(S.a, { type: 'backup', databaseId: S.a, backupId: base.id, pointInTime: between });
  assert.deepEqual(await rows(S.aCs), [1, 2, 10]);
});

ctx.it('restore from another database\'s backup: its credentials do not work on the target', async () => {
  const { db, cs } = await createDb({ name: 'other' });
  S.b = db.id;
  S.bCs = cs;
  await waitReady(ctx.c, S.b);
  await sql(S.bCs, 'CREATE TABLE t (x int); INSERT INTO t VALUES (100), (200)');
  S.bBackup = await backupNow(S.b);
  await backupsIdle(S.a);
  await restoreAndWait(S.a, { type: 'backup', databaseId: S.b, backupId: S.bBackup.id });
  assert.deepEqual(await rows(S.aCs), [100, 200]);
  const aPort = new URL(S.aCs).port;
  const bOnA = new URL(S.bCs);
  bOnA.port = aPort;
  await connectFails(bOnA.toString(), 'the other database\'s credential on the target');
  assert.deepEqual(await rows(S.bCs), [100, 200], 'the source is untouched');
  // the target keeps archiving and backing up on its new timeline
  await backupsIdle(S.a);
  await sql(S.aCs, 'INSERT INTO t VALUES (300)');
  await backupNow(S.a);
  // three restores so far (in place, point in time, from another database): all archived
  assertArchiveClean(S.a);
});

ctx.it('create from a backup: the data of the backup, only its own fresh credentials', async () => {
  const { db, cs } = await createDb({ name: 'from-backup', source: { type: 'backup', databaseId: S.b, backupId: S.bBackup.id } });
  assert.deepEqual(db.source, { type: 'backup', databaseId: S.b, backupId: S.bBackup.id });
  const ready = await waitReady(ctx.c, db.id, { timeoutMs: 90000 });
  assert.equal(ready.connections.length, 1);
  assert.deepEqual(await rows(cs), [100, 200]);
  const bOnC = new URL(S.bCs);
  bOnC.port = new URL(cs).port;
  await connectFails(bOnC.toString(), 'the source database\'s credential on the new database');
  S.c = db.id;
});

function pgbench(args, timeoutMs = 120000) {
  return new Promise((resolve, reject) => {
    execFile(PGBENCH, args, { timeout: timeoutMs, env: { ...process.env, PGCONNECT_TIMEOUT: '10' } }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`pgbench ${args.slice(0, -1).join(' ')} failed: ${stderr || err.message}\n${stdout}`));
      resolve(stdout + stderr);
    });
  });
}

ctx.it('clone a live database under a pgbench write load: no failed transaction on the source', async () => {
  await pgbench(['-i', '-q', '-s', '2', S.bCs]);
  const load = pgbench(['-n', '-c', '2', '-T', '12', S.bCs]);
  await sleep(1500);
  const t0 = Date.now();
  const { db, cs } = await createDb({ name: 'clone', source: { type: 'database', databaseId: S.b } });
  assert.deepEqual(db.source, { type: 'database', databaseId: S.b });
  await waitReady(ctx.c, db.id, { timeoutMs: 90000 });
  console.log(`# clone under load: ${Date.now() - t0} ms`);
  const out = await load;
  const failed = /number of failed transactions: (\d+)/.exec(out);
  assert.ok(!failed || failed[1] === '0', `failed transactions on the source during the clone:\n${out}`);
  assert.match(out, /number of transactions actually processed: [1-9]/);
  const n = await sql(cs, 'SELECT count(*)::int AS n FROM pgbench_accounts');
  assert.equal(n[0].n, 200000);
  assert.deepEqual(await rows(cs), [100, 200]);
  S.clone = db.id;
});

ctx.it('errors: 404 unknown target, source or backup; 409 while recovering; 422 for unusable backups', async () => {
  const good = { type: 'backup', databaseId: S.b, backupId: S.bBackup.id };
  expectError(await restore(unknownLike(S.a), good), 404, { field: 'targetDatabaseId' });
  expectError(await restore(S.a, { ...good, databaseId: unknownLike(S.b) }), 404, { field: 'source.databaseId' });
  expectError(await restore(S.a, { ...good, backupId: unknownLike(S.bBackup.id) }), 404, { field: 'source.backupId' });
  expectError(await restore(S.a, { ...good, backupId: 'bkp_nope' }), 404, { field: 'source.backupId' });
  // a backup of another database named with the wrong databaseId
  expectError(await restore(S.a, { ...good, databaseId: S.a }), 404, { field: 'source.backupId' });
  expectError(await restore(S.a, { ...good, type: 'database' }), 422, { field: 'source.type' });
  expectError(await restore(S.a, { ...good, pointInTime: 'yesterday' }), 422, { field: 'pointInTime' });
  expectError(await restore(S.a, { ...good, pointInTime: '2000-01-01T00:00:00Z' }), 422, { field: 'pointInTime' });
  expectError(await restore(S.a, { ...good, pointInTime: new Date(Date.now() + 3600e3).toISOString() }), 422, { field: 'pointInTime' });
  expectError(await call(ctx.c, 'GET', '/v1/databases/{databaseId}/backups', p(unknownLike(S.a))), 404);
  // a backup that is still running is not usable
  await backupsIdle(S.c);
  const r = await raw(ctx.server, 'POST', `/v1/databases/${S.c}/backups`, { json: { type: 'incremental' } });
  assert.equal(r.status, 202);
  expectError(await restore(S.a, { type: 'backup', databaseId: S.c, backupId: r.body.data.id }), 422, { field: 'source.backupId' });
  // 409 while the target is recovering
  expectStatus(await restore(S.a, good), 200);
  expectError(await restore(S.a, good), 409, { field: 'targetDatabaseId' });
  await waitReady(ctx.c, S.a, { timeoutMs: 90000 });
  // creating from a backup: 404 / 400 with the same hints
  expectError(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, source: { ...good, backupId: unknownLike(S.bBackup.id) } } }), 404, { field: 'source.backupId' });
  expectError(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, source: { type: 'database', databaseId: unknownLike(S.b) } } }), 404, { field: 'source.databaseId' });
});

ctx.it('a restore interrupted by kill -9 of pgfleet finishes after the restart', async () => {
  await backupsIdle(S.a);
  await backupsIdle(S.b);
  expectStatus(await restore(S.a, { type: 'backup', databaseId: S.b, backupId: S.bBackup.id }), 200);
  // kill while the recovery is under way (or just after)
  await until(() => fs.existsSync(path.join(instanceDir(ctx.server.home, S.a), 'data.restore')) ||
    fs.existsSync(path.join(instanceDir(ctx.server.home, S.a), 'data.ready')), { timeoutMs: 10000, intervalMs: 20 });
  await ctx.server.kill9();
  await ctx.server.start();
  await waitReady(ctx.c, S.a, { timeoutMs: 120000 });
  assert.deepEqual(await rows(S.aCs), [100, 200]);
  assert.deepEqual(await rows(S.bCs), [100, 200]);
  // the replaced data is removed just after the database is ready again
  const dir = instanceDir(ctx.server.home, S.a);
  const leftovers = () => fs.readdirSync(dir).filter((f) => f.startsWith('data.'));
  await until(() => leftovers().length === 0, { timeoutMs: 15000, intervalMs: 100 });
  assert.deepEqual(leftovers(), [], 'no restore leftovers');
});

ctx.it('a clone interrupted by kill -9 of pgfleet finishes after the restart, adding no backup to the source', async () => {
  await backupsIdle(S.b);
  const before = (await listBackups(S.b)).data.map((b) => b.id);
  const { db, cs } = await createDb({ name: 'clone-k9', source: { type: 'database', databaseId: S.b } });
  // kill while pg_basebackup or the recovery is under way (or just after)
  const dir = instanceDir(ctx.server.home, db.id);
  await until(() => fs.existsSync(path.join(dir, 'data.restore')) || fs.existsSync(path.join(dir, 'data.ready')),
    { timeoutMs: 10000, intervalMs: 10 });
  await ctx.server.kill9();
  await ctx.server.start();
  await waitReady(ctx.c, db.id, { timeoutMs: 120000 });
  assert.deepEqual(await rows(cs), [100, 200]);
  assert.deepEqual(await rows(S.bCs), [100, 200]);
  await backupsIdle(S.b);
  assert.deepEqual((await listBackups(S.b)).data.map((b) => b.id), before, 'the clone added a backup to the source');
  const leftovers = () => fs.readdirSync(dir).filter((f) => f.startsWith('data.'));
  await until(() => leftovers().length === 0, { timeoutMs: 15000, intervalMs: 100 });
  assert.deepEqual(leftovers(), [], 'no clone leftovers');
});

ctx.it('an in-place restore interrupted by kill -9 of pgfleet finishes after the restart', async () => {
  await backupsIdle(S.b);
  await sql(S.bCs, 'INSERT INTO t VALUES (300)');
  const marker = path.join(instanceDir(ctx.server.home, S.b), 'restore.overwriting');
  expectStatus(await restore(S.b, { type: 'backup', databaseId: S.b, backupId: S.bBackup.id }), 200);
  // kill while pgBackRest rewrites the stopped server's data, or during its recovery
  assert.ok(await until(() => fs.existsSync(marker), { timeoutMs: 10000, intervalMs: 5 }), 'no in-place restore began');
  await ctx.server.kill9();
  await ctx.server.start();
  await waitReady(ctx.c, S.b, { timeoutMs: 120000 });
  assert.deepEqual(await rows(S.bCs), [100, 200]);
  assert.ok(!fs.existsSync(marker), 'the in-place marker outlived the restore');
});

ctx.it('an in-place restore that fails leaves the database in failure, never half-restored and serving; a good backup rescues it', async () => {
  await backupsIdle(S.b);
  const bad = await backupNow(S.b, { type: 'full' });
  // damage that full backup in the repository: pg_control, which pgBackRest restores last
  // (after it has rewritten the rest), is gone
  const sets = path.join(ctx.server.home, 'backup', 'backup', instanceOf(ctx.server.home, S.b)); // the stanza is the instance's
  const label = fs.readdirSync(sets).filter((f) => /^\d{8}-\d{6}F$/.test(f)).sort().pop();
  const control = path.join(sets, label, 'pg_data', 'global', 'pg_control.lz4');
  assert.ok(fs.existsSync(control), `no ${control}`);
  fs.rmSync(control);
  expectStatus(await restore(S.b, { type: 'backup', databaseId: S.b, backupId: bad.id }), 200);
  let d;
  const failed = await until(async () => {
    d = expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}', p(S.b)), 200).data;
    return d.status === 'failure';
  }, { timeoutMs: 150000, intervalMs: 200 }); // 3 attempts; pgBackRest retries a read 15 s later
  assert.ok(failed, `status ${d.status}, not failure`);
  await connectFails(S.bCs, 'a half-restored database');
  assert.ok(fs.existsSync(path.join(instanceDir(ctx.server.home, S.b), 'restore.overwriting')));
  await restoreAndWait(S.b, { type: 'backup', databaseId: S.b, backupId: S.bBackup.id });
  assert.deepEqual(await rows(S.bCs), [100, 200]);
  assertArchiveClean(S.b);
});

ctx.it('deleting a database removes its backups', async () => {
  const repo = path.join(ctx.server.home, 'backup');
  const stanza = instanceOf(ctx.server.home, S.c); // the mapping goes with the row
  assert.ok(fs.existsSync(path.join(repo, 'backup', stanza)));
  expectStatus(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', p(S.c)), 204);
  assert.ok(!fs.existsSync(path.join(repo, 'backup', stanza)), 'backup set directory still there');
  assert.ok(!fs.existsSync(path.join(repo, 'archive', stanza)), 'WAL archive still there');
  expectError(await call(ctx.c, 'GET', '/v1/databases/{databaseId}/backups', p(S.c)), 404);
});

ctx.itShutsDownCleanly();
