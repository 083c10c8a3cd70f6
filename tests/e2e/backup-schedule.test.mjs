// Scheduled backups: with a short --backup-interval, a database that had writes gets a
// backup on schedule (incremental while its last full or differential is younger than
// --backup-diff-interval, then differential); one without writes gets none;
// --backup-retention-days is reported in the list's meta.
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, waitReady } from './lib/api.mjs';
import { sql } from './lib/pg.mjs';
import { until, sleep } from './lib/procs.mjs';

const INTERVAL_S = 4;
const DIFF_INTERVAL_S = 20;
const ctx = useServer('backup-schedule', {
  extraArgs: ['--backup-interval', String(INTERVAL_S), '--backup-full-interval', '3600',
    '--backup-diff-interval', String(DIFF_INTERVAL_S), '--backup-retention-days', '3'],
});
const S = {};

const listBackups = async (databaseId) =>
  expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId } } }), 200);
const settled = (list) => list.data.length > 0 && list.data.every((b) => b.status === 'completed');

ctx.it('setup: a ready database whose first full backup completed', async () => {
  const { data: project } = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: 'sched', createDatabase: false } }), 201);
  const { data: db } = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: project.id, name: 'sched' } }), 201);
  S.db = db;
  S.cs = db.connections[0].endpoints.direct.connectionString;
  await waitReady(ctx.c, db.id);
  let list;
  assert.ok(await until(async () => settled(list = await listBackups(db.id)), { timeoutMs: 60000, intervalMs: 300 }),
    `the first full backup did not complete: ${JSON.stringify(list?.data)}`);
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].backupType, 'full');
  assert.equal(list.meta.backupRetentionDays, 3);
}, { timeout: 120000 });

ctx.it('writes since the last backup: an incremental backup is taken on schedule', async () => {
  await sql(S.cs, 'CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000)');
  let list;
  const ok = await until(async () => {
    list = await listBackups(S.db.id);
    return list.data.length >= 2 && settled(list);
  }, { timeoutMs: 60000, intervalMs: 500 });
  assert.ok(ok, `no scheduled backup after writes: ${JSON.stringify(list?.data)}`);
  assert.equal(list.data.length, 2, `exactly one scheduled backup: ${JSON.stringify(list.data)}`);
  assert.equal(list.data[0].backupType, 'incremental', `the full is younger than ${DIFF_INTERVAL_S} s: ${JSON.stringify(list.data)}`);
  S.full = list.data[1];
  assert.equal(S.full.backupType, 'full');
}, { timeout: 120000 });

ctx.it('no writes since the last backup: the scheduled backup is skipped; then a differential once the full is older than the differential interval', async () => {
  const before = (await listBackups(S.db.id)).data.length;
  // three intervals with no writes (reads do not count)
  for (let i = 0; i < 3; i++) {
    await sql(S.cs, 'SELECT count(*) FROM t');
    await sleep(INTERVAL_S * 1000);
  }
  const after = (await listBackups(S.db.id)).data;
  assert.equal(after.length, before, `a backup was taken without writes: ${JSON.stringify(after)}`);
  // a write makes the next one due again; the last full (or differential) is by then older
  // than the differential interval
  const age = Date.now() - Date.parse(S.full.createdAt);
  if (age < DIFF_INTERVAL_S * 1000) await sleep(DIFF_INTERVAL_S * 1000 - age + 500);
  await sql(S.cs, 'INSERT INTO t VALUES (0)');
  let list;
  assert.ok(await until(async () => {
    list = await listBackups(S.db.id);
    return list.data.length > before && settled(list);
  }, { timeoutMs: 60000, intervalMs: 500 }), 'no scheduled backup after a new write');
  assert.equal(list.data[0].backupType, 'differential', JSON.stringify(list.data));
}, { timeout: 120000 });

ctx.itShutsDownCleanly();
