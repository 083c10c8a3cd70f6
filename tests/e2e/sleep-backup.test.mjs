// Backups of sleeping databases (issue 11): a backup of a sleeping database is taken offline,
// with no postmaster of it started during the backup (a connection that comes meanwhile is
// held, then wakes it); that backup restores; the schedule skips a sleeping database with
// no writes since its last backup and backs up one with writes, without waking either.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { useServer } from './lib/fixture.mjs';
import { sleepProbes } from './lib/sleep.mjs';
import { call, expectStatus, raw, waitReady, uniq } from './lib/api.mjs';
import { psql, sql } from './lib/pg.mjs';
import { until, sleep, instanceDir, procsMatching } from './lib/procs.mjs';

const INTERVAL_S = 3;
const ctx = useServer('sleep-backup', {
  extraArgs: ['--suspend-after', '1', '--backup-interval', String(INTERVAL_S), '--backup-full-interval', '3600',
    '--backup-diff-interval', '3600'],
});
const S = {};

const direct = (db) => db.connections[0].endpoints.direct.connectionString;
const { running, asleep, waitAsleep } = sleepProbes(ctx);
const listBackups = async (databaseId) =>
  expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId } } }), 200).data;
const completed = async (id) => (await listBackups(id)).filter((b) => b.status === 'completed');
const log = () => fs.readFileSync(ctx.server.logFile, 'utf8');
const offlineBackups = (inst) => log().split('\n').filter((l) => l.includes(`db=${inst} `) && /backup \S+ \([a-z]+, offline,/.test(l)).length;

// asleep, and no backup of it queued or running
async function waitSettled(id) {
  assert.ok(await until(async () => asleep(id) && (await listBackups(id)).every((b) => b.status !== 'running'),
    { timeoutMs: 90000, intervalMs: 200 }), `${id}: not asleep with its backups settled`);
}

ctx.it('setup: two databases, one with a table; both asleep once their first backups are taken', async () => {
  const { data: project } = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('sb'), createDatabase: false } }), 201);
  S.project = project;
  for (const name of ['written', 'quiet']) {
    const { data: db } = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: project.id, name } }), 201);
    await waitReady(ctx.c, db.id);
    S[name] = db;
  }
  await sql(direct(S.written), 'CREATE TABLE t (x int); INSERT INTO t VALUES (1)');
  for (const db of [S.written, S.quiet]) {
    assert.ok(await until(async () => (await completed(db.id)).length >= 1, { timeoutMs: 90000, intervalMs: 300 }), 'first backup');
  }
  // the write above came after the first backup was queued: the schedule takes one more
  await waitSettled(S.written.id);
  await waitSettled(S.quiet.id);
}, { timeout: 240000 });

ctx.it('a backup of a sleeping database runs offline: no postmaster of it starts during it; a connection meanwhile waits, then wakes it', async () => {
  const id = S.written.id;
  await waitSettled(id);
  const inst = path.basename(instanceDir(ctx.server.home, id));
  const before = offlineBackups(inst);
  const r = await raw(ctx.server, 'POST', `/v1/databases/${id}/backups`, { json: {} });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const bkp = r.body.data.id;
  // watch for a postmaster of this database until the backup is done (bounded)
  let seenRunning = false;
  let b;
  for (let i = 0; i < 3000; i++) {
    if (running(id)) seenRunning = true;
    b = (await listBackups(id)).find((x) => x.id === bkp);
    if (b && b.status !== 'running') break;
    await sleep(20);
  }
  assert.equal(b?.status, 'completed', `backup: ${JSON.stringify(b)}`);
  assert.equal(seenRunning, false, 'a postmaster of the sleeping database ran during its backup');
  assert.equal(offlineBackups(inst), before + 1, 'the backup was taken offline');
  S.offline = bkp;

  // a connection that comes during an offline backup is held until the backup ends, then
  // wakes the database: caught while pgBackRest's backup of the stanza runs
  await waitSettled(id);
  const r2 = await raw(ctx.server, 'POST', `/v1/databases/${id}/backups`, { json: {} });
  assert.equal(r2.status, 202);
  const pgbrBackup = () => procsMatching(`--stanza=${inst}`).some((p) => p.argv.includes('backup') && p.argv.includes('--no-online'));
  assert.ok(await until(async () => pgbrBackup(), { timeoutMs: 60000, intervalMs: 10 }), 'the offline backup did not start');
  assert.equal(await psql(direct(S.written), 'SELECT count(*) FROM t'), '1', 'a connection during the backup');
  assert.ok(await until(async () => (await listBackups(id)).find((x) => x.id === r2.body.data.id)?.status === 'completed',
    { timeoutMs: 60000, intervalMs: 200 }), 'the second backup did not complete');
  const lines = log().split('\n').filter((l) => l.includes(`db=${inst} `) || l.includes(`db=${id} `));
  const offAt = lines.findLastIndex((l) => /backup \S+ \([a-z]+, offline,/.test(l));
  const wokeAt = lines.findLastIndex((l) => l.includes('awake: the server started'));
  assert.ok(offAt >= 0 && wokeAt > offAt, 'the server started only after the offline backup ended');
}, { timeout: 180000 });

ctx.it('the offline backup restores', async () => {
  const id = S.written.id;
  await sql(direct(S.written), 'INSERT INTO t VALUES (2)');
  await waitAsleep(id);
  const rs = expectStatus(await call(ctx.c, 'POST', '/v1/databases/{targetDatabaseId}/restore',
    { params: { path: { targetDatabaseId: id } }, body: { source: { type: 'backup', databaseId: id, backupId: S.offline } } }), 200).data;
  assert.equal(rs.status, 'recovering');
  await waitReady(ctx.c, id, { timeoutMs: 120000 });
  assert.deepEqual((await sql(direct(S.written), 'SELECT x FROM t ORDER BY x')).map((x) => x.x), [1], 'the data of the offline backup');
}, { timeout: 180000 });

ctx.it('the schedule skips a sleeping database with no writes and backs up one with writes, without waking either', async () => {
  await waitSettled(S.written.id);
  await waitSettled(S.quiet.id);
  const quietBefore = (await listBackups(S.quiet.id)).length;
  // a read wakes it but writes nothing
  assert.equal(await psql(direct(S.quiet), 'SELECT 1'), '1');
  await waitAsleep(S.quiet.id);
  // a write, then asleep again
  const writtenBefore = (await completed(S.written.id)).length;
  await sql(direct(S.written), 'INSERT INTO t VALUES (3)');
  await waitAsleep(S.written.id);
  // the next scheduled round backs up the written one (online if it was queued before the
  // database fell asleep, else offline), and no postmaster of it starts for that
  let wokeWritten = false;
  let taken = false;
  for (const end = Date.now() + 60000; !taken && Date.now() < end; await sleep(50)) {
    if (running(S.written.id)) wokeWritten = true;
    taken = (await completed(S.written.id)).length > writtenBefore;
  }
  assert.ok(taken, 'no scheduled backup of the sleeping database with writes');
  assert.equal(wokeWritten, false, 'the scheduled backup woke the sleeping database');
  // three more intervals: the quiet one gets none, and neither is woken by the schedule
  let woke = false;
  for (const end = Date.now() + 3 * INTERVAL_S * 1000 + 2000; Date.now() < end; await sleep(50)) {
    if (running(S.quiet.id)) woke = true;
  }
  assert.equal(woke, false, 'the schedule woke the quiet database');
  assert.equal((await listBackups(S.quiet.id)).length, quietBefore, 'a backup of a sleeping database with no writes');
}, { timeout: 180000 });
