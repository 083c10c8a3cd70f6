// kill -9 of serve in the middle of a wake or a sleep (issue 11): after the restart no
// database is left half-stopped and no postmaster runs twice; the database answers through
// both endpoints, sleeps again and wakes again.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { useServer } from './lib/fixture.mjs';
import { sleepProbes } from './lib/sleep.mjs';
import { call, expectStatus, waitReady, uniq } from './lib/api.mjs';
import { psql } from './lib/pg.mjs';
import { freePort, postmasters, until, sleep, procsMatching, instanceDir } from './lib/procs.mjs';

const metricsPort = await freePort();
const ctx = useServer('sleep-kill', {
  extraArgs: ['--suspend-after', '1', '--metrics-listen', `127.0.0.1:${metricsPort}`],
});

const direct = (conn) => conn.endpoints.direct.connectionString;
const pooled = (conn) => conn.endpoints.pooled.connectionString;
const { running, marked, asleep, waitAsleep, metrics } = sleepProbes(ctx, metricsPort);

async function newDatabase(name) {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq(name) } }), 201);
  await waitReady(ctx.c, p.data.database.id);
  return { db: p.data.database, conn: p.data.database.connections[0] };
}

function psqlTry(cs, command = 'SELECT 1') {
  return new Promise((resolve) => {
    execFile('psql', [cs, '-XAtqc', command], { timeout: 60000, env: { ...process.env, PGCONNECT_TIMEOUT: '50' } },
      (err, stdout, stderr) => resolve({ ok: !err, out: err ? String(stderr || err.message) : stdout.trim() }));
  });
}

// kill -9 of serve at a moment of a wake or a sleep of db: after the restart no postmaster of
// it ever runs twice, it answers through both endpoints, and it falls asleep again cleanly
// (no postmaster, the mark) and wakes again. moment() polls for the moment (bounded); when a
// round misses it (the window is short), the database is woken and the round tried again.
async function killAt(name, moment, { wakeFirst }) {
  const { db, conn } = await newDatabase(name);
  const inst = path.basename(instanceDir(ctx.server.home, db.id));
  let caught = false;
  let held = null;
  for (let round = 0; round < 6 && !caught; round++) {
    await waitAsleep(db.id);
    if (wakeFirst) held = psqlTry(direct(conn), 'SELECT 7'); // held by the data path; starts the wake
    else await psqlTry(direct(conn)); // awake: it sleeps again a second after
    caught = await until(async () => moment(db.id, inst), { timeoutMs: 20000, intervalMs: 2 });
    if (!caught && held) await held;
  }
  assert.ok(caught, `${name}: the moment was not caught`);
  await ctx.server.kill9();
  let most = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) { most = Math.max(most, postmasters(ctx.server.home).filter((p) => p.dbId === db.id).length); await sleep(20); }
  })();
  try {
    await ctx.server.restart();
    if (held) {
      const r = await held;
      assert.ok(r.ok && r.out === '7', `the connection held during the wake: ${r.out}`);
    }
    assert.equal(await psql(direct(conn), 'SELECT 1'), '1', 'direct after the restart');
    assert.equal(await psql(pooled(conn), 'SELECT 2'), '2', 'pooled after the restart');
    await waitAsleep(db.id, `${name} after the restart`);
    assert.equal(await psql(pooled(conn), 'SELECT 3'), '3', 'pooled wake after the restart');
    assert.equal(await psql(direct(conn), 'SELECT 4'), '4', 'direct after that');
  } finally {
    sampling = false;
    await sampler;
  }
  assert.equal(most, 1, `${name}: postmasters of the database at once: ${most}`);
  const m = await metrics();
  assert.equal(m.get('pgfleet_databases_awake') + m.get('pgfleet_databases_asleep'), m.get('pgfleet_databases{status="ready"}'),
    'the data path counts every ready database awake or asleep');
}
const pidStatus = (id) => {
  try { return fs.readFileSync(path.join(instanceDir(ctx.server.home, id), 'data', 'postmaster.pid'), 'utf8').split('\n')[7]?.trim(); } catch { return null; }
};

const dpConnections = (id) => fs.readFileSync(path.join(ctx.server.home, 'datapath.log'), 'utf8').split('\n')
  .filter((l) => l.includes(`db=${id} `) && l.includes('connection from')).length;

ctx.it('kill -9 of serve mid-wake (its postmaster starting, not ready yet): one postmaster after the restart, the held client served', async () => {
  await killAt('killwake', (id) => pidStatus(id) === 'starting', { wakeFirst: true });
}, { timeout: 240000 });

ctx.it('kill -9 of serve as a connection to a sleeping database is held (before its server starts)', async () => {
  let seen = -1;
  await killAt('killheld', (id) => {
    const n = dpConnections(id);
    if (seen < 0 || !asleep(id)) { seen = n; return false; }
    // no postmaster.pid yet: no server of it started (a /proc scan is too slow for the window)
    return n > seen && pidStatus(id) === null;
  }, { wakeFirst: true });
}, { timeout: 240000 });

ctx.it('kill -9 of serve mid-sleep (its WAL being archived, the pool paused): after the restart it works and sleeps again', async () => {
  await killAt('killsleep', (id, inst) => procsMatching(`--stanza=${inst}`).some((p) => p.argv.includes('check')), { wakeFirst: false });
}, { timeout: 240000 });

ctx.it('kill -9 of serve mid-sleep (its server shutting down): after the restart it works and sleeps again', async () => {
  await killAt('killstop', (id) => pidStatus(id) === 'stopping', { wakeFirst: false });
}, { timeout: 240000 });

ctx.itShutsDownCleanly();
