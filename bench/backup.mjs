// Backup figures (issue 3). A database of about 1 GiB (pgbench scale 70, override with
// BENCH_BACKUP_SCALE), then, each also as a ratio to `cp -a` of the same data directory
// measured in the same run:
//   full backup    POST /v1/databases/{id}/backups {"type":"full"} until completed
//   restore        POST /v1/databases/{id}/restore (that backup, in place) until ready,
//                  right after the backup, then again after 5 s of pgbench writes
//   clone          POST /v1/databases {"source":{"type":"database"}} until ready (pg_basebackup)
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { benchServer, sleep } from './lib.mjs';

const SCALE = Number(process.env.BENCH_BACKUP_SCALE ?? 70);
const PGBIN = '/usr/lib/postgresql/15/bin';

const secs = (ms) => (ms / 1000).toFixed(1);

const server = await benchServer({ name: 'backup', ports: 20, pooler: false, flags: ['--backup-interval', '0'] });
const { home } = server;
const api = (method, path, body) => server.api(method, path, body);
const waitReady = (id) => server.waitReady(id);
async function waitBackups(id, backupId) {
  for (;;) {
    const { data } = await api('GET', `/v1/databases/${id}/backups`);
    const b = backupId ? data.find((x) => x.id === backupId) : null;
    if (backupId ? b && b.status !== 'running' : data.every((x) => x.status !== 'running')) {
      if (b && b.status !== 'completed') throw new Error(`backup ${backupId} ${b.status}`);
      return b;
    }
    await sleep(20);
  }
}

try {
  await server.start();
  const p = await api('POST', '/v1/projects', { name: 'bench-backup' });
  const db = p.data.database.id;
  const cs = p.data.database.connections[0].endpoints.direct.connectionString;
  await waitReady(db);
  await waitBackups(db);
  process.stdout.write(`pgbench -i -s ${SCALE} ... `);
  let t = Date.now();
  execFileSync(`${PGBIN}/pgbench`, ['-i', '-q', '-s', String(SCALE), cs], { stdio: 'ignore' });
  const data = join(home, 'instances', db, 'data');
  const size = execFileSync('du', ['-sb', data], { encoding: 'utf8' }).split('\t')[0];
  console.log(`${secs(Date.now() - t)} s, data directory ${(Number(size) / 2 ** 30).toFixed(2)} GiB`);

  execFileSync('sync');
  const copy = join(home, 'cp-a-copy');
  t = Date.now();
  execFileSync('cp', ['-a', data, copy]);
  execFileSync('sync');
  const cpMs = Date.now() - t;
  rmSync(copy, { recursive: true, force: true });
  console.log(`cp -a of the data directory (+ sync):  ${secs(cpMs)} s`);

  t = Date.now();
  const b = await api('POST', `/v1/databases/${db}/backups`, { type: 'full' });
  await waitBackups(db, b.data.id);
  const backupMs = Date.now() - t;
  console.log(`full backup:                           ${secs(backupMs)} s  (${(backupMs / cpMs).toFixed(2)}x cp -a)`);

  t = Date.now();
  await api('POST', `/v1/databases/${db}/restore`, { source: { type: 'backup', databaseId: db, backupId: b.data.id } });
  await waitReady(db);
  const restoreMs = Date.now() - t;
  console.log(`in-place restore:                      ${secs(restoreMs)} s  (${(restoreMs / cpMs).toFixed(2)}x cp -a)`);
  await waitBackups(db); // the full backup a restore queues

  // the same restore after writes: pgbench's updates touch pages all over the largest
  // table (one 0.9 GiB file), which the delta restore then rewrites whole
  execFileSync(`${PGBIN}/pgbench`, ['-T', '5', '-c', '4', '-j', '2', cs], { stdio: 'ignore' });
  t = Date.now();
  await api('POST', `/v1/databases/${db}/restore`, { source: { type: 'backup', databaseId: db, backupId: b.data.id } });
  await waitReady(db);
  const restore2Ms = Date.now() - t;
  console.log(`in-place restore after 5 s of pgbench: ${secs(restore2Ms)} s  (${(restore2Ms / cpMs).toFixed(2)}x cp -a)`);
  await waitBackups(db);

  t = Date.now();
  const c = await api('POST', '/v1/databases', { projectId: p.data.id, name: 'clone', source: { type: 'database', databaseId: db } });
  await waitReady(c.data.id);
  const cloneMs = Date.now() - t;
  console.log(`clone (pg_basebackup + recovery):       ${secs(cloneMs)} s  (${(cloneMs / cpMs).toFixed(2)}x cp -a)`);
} finally {
  await server.stop();
  if (!process.env.BENCH_KEEP_HOME) rmSync(home, { recursive: true, force: true });
  else console.log(`kept ${home}`);
}
