// A stop is bounded: SIGTERM while a backup runs and the spare-copy thread refills (each
// copy ends with a syncfs, seconds on a busy disk) ends the server within seconds: the
// running backup is interrupted (its op runs again after the restart, and completes), the
// refill stops after the step in progress. Every background loop checks for the stop.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { useServer } from './lib/fixture.mjs';
import { call, raw, expectStatus, waitReady, uniq } from './lib/api.mjs';
import { procsMatching, until, sleep, instanceOf } from './lib/procs.mjs';

const SPARES = 12; // a refill (each spare a copy, a stanza-create and a start) far longer than the test waits for a stop
const ctx = useServer('shutdown', { extraArgs: ['--spares', String(SPARES), '--backup-interval', '0'] });

const instances = () => path.join(ctx.server.home, 'instances');
const readySpares = () => fs.readdirSync(instances()).filter((n) => fs.existsSync(path.join(instances(), n, 'spare')) && fs.existsSync(path.join(instances(), n, 'data', 'postmaster.pid'))).length;
const backupProcs = (id) => procsMatching(`--stanza=${id}`).filter((p) => p.argv.some((a) => /pgbackrest/.test(a)));
const logTime = (line) => Date.parse(/ts=(\S+)/.exec(line)?.[1] ?? '');

ctx.it('SIGTERM during a backup and a spares refill: exit 0 within seconds; the backup completes after the restart', async () => {
  const { data: project } = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('stop'), createDatabase: false } }), 201);
  const d = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: project.id, name: 'stop' } }), 201).data;
  await waitReady(ctx.c, d.id, { timeoutMs: 90000 });
  const inst = instanceOf(ctx.server.home, d.id); // names the stanza
  let caught = false;
  for (let attempt = 0; attempt < 3 && !caught; attempt++) {
    const r = await raw(ctx.server, 'POST', `/v1/databases/${d.id}/backups`, { json: { type: 'full' } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    caught = await until(() => backupProcs(inst).some((p) => p.argv.includes('backup')), { timeoutMs: 30000, intervalMs: 20 });
  }
  assert.ok(caught, 'a pgBackRest backup of the database was seen running');
  const spares = readySpares();
  assert.ok(spares < SPARES - 2, `the refill still runs at SIGTERM (${spares} of ${SPARES} spares ready)`);
  const t0 = Date.now();
  const ex = await ctx.server.stop({ graceMs: 60000 });
  const took = Date.now() - t0;
  assert.equal(ex.code, 0);
  // what the stop waited for: the ops that ran at SIGTERM (their end is logged), then the
  // servers; the refill adds one copy at most
  const log = ctx.server.log().split('\n');
  const term = log.findLastIndex((l) => l.includes('received SIGTERM'));
  const after = log.slice(term);
  const lastOp = after.filter((l) => /: (done in|failed)/.test(l)).map(logTime).filter(Number.isFinite);
  const stopped = logTime(after.find((l) => l.includes('msg=stopped')) ?? '');
  const from = lastOp.length ? Math.max(...lastOp) : logTime(after[0]);
  console.log(`# stop: ${took} ms after SIGTERM, ${stopped - from} ms after the last op; ${spares} spares ready at SIGTERM, ${readySpares()} after`);
  assert.ok(Number.isFinite(stopped) && stopped - from < 8000,
    `stopped ${stopped - from} ms after the last op ended (total ${took} ms, ${readySpares()} spares ready):\n${after.slice(0, 40).join('\n')}`);
  assert.ok(after.some((l) => l.includes('interrupted by the stop')), 'the running backup was interrupted, not waited for');
  assert.deepEqual(await ctx.server.leftoverProcesses(), [], 'processes of this home still running after the server exited');
  // the interrupted backup's op runs again after the restart and completes
  await ctx.server.start();
  let done = [];
  for (let i = 0; i < 600 && !done.length; i++) {
    const list = expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId: d.id } } }), 200).data;
    done = list.filter((b) => b.status === 'completed' && b.backupType === 'full');
    if (!done.length) await sleep(200);
  }
  assert.ok(done.length >= 1, 'the interrupted full backup completed after the restart');
}, { timeout: 300000 });

// A data path that dies while the server stops is not started again behind the stop (a
// fresh-clone run once left one running: the reader restarted it after SIGTERM and the stop
// then signalled the dead one's pid).
ctx.it('the data path dies during a stop: exit 0 and no process of the home left', async () => {
  const dp = () => ctx.server.processes().filter((p) => p.argv.includes('datapath'));
  assert.ok(await until(() => dp().length === 1, { timeoutMs: 10000, intervalMs: 50 }), 'one data path runs');
  const [{ pid }] = dp();
  const stopping = ctx.server.stop({ graceMs: 60000 });
  await sleep(5);
  process.kill(pid, 'SIGKILL');
  const ex = await stopping;
  assert.equal(ex.code, 0);
  assert.deepEqual(await ctx.server.leftoverProcesses(), [], `processes of this home still running after the server exited\n${ctx.server.logTail(20)}`);
});
