// The warm pool and the footprint (issue 11): started spares that a create takes and the
// pool refills, spares adopted after a crash and removed when no longer wanted, the disk of
// an empty database, PgBouncer reloads coalesced across concurrent creates, and the
// connection budget (90 direct connections beside PgBouncer's pool).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, waitReady, uniq } from './lib/api.mjs';
import { connect, closeQuietly, sql } from './lib/pg.mjs';
import { freePort, until, instanceOf, postmasters, alive, procsMatching } from './lib/procs.mjs';
import { cli } from './lib/server.mjs';

const SPARES = 2;
const metricsPort = await freePort();
const ctx = useServer('warmpool', { extraArgs: ['--spares', String(SPARES), '--metrics-listen', `127.0.0.1:${metricsPort}`, '--backup-interval', '0'] });
const S = {};

async function metric(name) {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no ${name} in /metrics`);
  return Number(line.split(' ')[1]);
}
const spareDirs = () => fs.readdirSync(path.join(ctx.server.home, 'instances')).filter((d) => fs.existsSync(path.join(ctx.server.home, 'instances', d, 'spare')));
const sparePms = () => postmasters(ctx.server.home, { spares: true }).filter((p) => spareDirs().includes(p.instance));
const fullPool = () => until(async () => (await metric('pgfleet_spares_ready')) === SPARES && sparePms().length === SPARES, { timeoutMs: 60000, intervalMs: 100 });
async function createDb(name) {
  const d = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name } }), 201).data;
  return d;
}

ctx.it('setup: a project; the pool fills with started spares that listen on their socket only', async () => {
  S.project = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('warm'), createDatabase: false } }), 201).data;
  assert.ok(await fullPool(), `the pool did not reach ${SPARES} started spares`);
  for (const id of spareDirs()) {
    const pid = fs.readFileSync(path.join(ctx.server.home, 'instances', id, 'data', 'postmaster.pid'), 'utf8').split('\n');
    assert.equal(pid[5], '', `spare ${id} has no TCP listener (listen_addresses '')`);
    assert.ok(fs.existsSync(path.join(ctx.server.home, 'backup', 'backup', id, 'backup.info')), `spare ${id}'s stanza is made up front`);
  }
  const status = await cli(['status', '--home', ctx.server.home], { full: true });
  assert.match(status, new RegExp(`^spares: ${SPARES}$`, 'm'));
});

// The backends of pgfleet's admin role under the postmaster of instance inst (a backend's
// title: "postgres: pgfleet_admin postgres [local] idle").
const parentOf = (pid) => { try { return Number(/\nPPid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]); } catch { return 0; } };
const adminBackends = (inst) => procsMatching('postgres: pgfleet_admin').filter((p) => parentOf(p.pid) === pidOf(inst)).map((p) => p.pid);
const provisionLines = (dbId) => ctx.server.log().split('\n').filter((l) => l.includes(`db=${dbId} `) && /db_provision: /.test(l));

const pidOf = (inst) => Number(fs.readFileSync(path.join(ctx.server.home, 'instances', inst, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);

ctx.it('a create takes a started spare without restarting its server: ready, served by the spare, the pool refills', async () => {
  const spares = new Set(spareDirs());
  const pids = new Map([...spares].map((id) => [id, pidOf(id)]));
  const taken0 = await metric('pgfleet_spares_taken_total');
  const t0 = Date.now();
  const d = await createDb('from-spare');
  await waitReady(ctx.c, d.id);
  const ms = Date.now() - t0;
  const inst = instanceOf(ctx.server.home, d.id);
  assert.ok(spares.has(inst), `the database's instance ${inst} is one of the spares ${[...spares]}`);
  assert.equal(await metric('pgfleet_spares_taken_total'), taken0 + 1);
  assert.match(ctx.server.log(), new RegExp(`db=${d.id} msg="attached to the warm spare ${inst}"`));
  // the hand-over changes nothing about the server: the same postmaster, on the socket every
  // server uses (run/<instance>/.s.PGSQL.5432), whatever the database's public port
  assert.equal(pidOf(inst), pids.get(inst), 'the postmaster that served the spare serves the database');
  assert.ok(alive(pids.get(inst)), 'the spare\'s postmaster still runs');
  assert.doesNotMatch(ctx.server.log(), new RegExp(`db=${inst} msg="the server pid=\\d+ runs on port`));
  assert.ok(fs.existsSync(path.join(ctx.server.home, 'run', inst, '.s.PGSQL.5432')), 'the socket is .s.PGSQL.5432');
  const cs = d.connections[0].endpoints.direct.connectionString;
  assert.equal((await sql(cs, 'SELECT 1 AS one'))[0].one, 1);
  assert.ok(!fs.existsSync(path.join(ctx.server.home, 'instances', inst, 'spare')), 'the taken spare is no spare any more');
  assert.ok(await fullPool(), 'the pool was refilled');
  assert.ok(!spareDirs().includes(inst));
  console.log(`# create from a warm spare: ready ${ms} ms after POST`);
  S.db = d;
});

// Each started spare keeps an admin session open (opened while the spare is made), so the
// role create of its hand-over forks no backend: it runs on that session, which ends with it.
ctx.it('a spare keeps an admin session open; the hand-over creates the role on it', async () => {
  assert.ok(await fullPool());
  const spares = spareDirs();
  for (const id of spares) assert.equal(adminBackends(id).length, 1, `spare ${id} keeps one admin session`);
  const d = await createDb('kept-session');
  await waitReady(ctx.c, d.id);
  const inst = instanceOf(ctx.server.home, d.id);
  assert.ok(spares.includes(inst));
  assert.match(ctx.server.log(), new RegExp(`db=${inst} msg="created a role \\(kept session \\d+ ms, statements \\d+ ms\\)"`));
  assert.ok(await until(() => adminBackends(inst).length === 0, { timeoutMs: 10000, intervalMs: 100 }), 'the kept session is closed after the hand-over');
  const cs = d.connections[0].endpoints.direct.connectionString;
  assert.equal((await sql(cs, 'SELECT 3 AS three'))[0].three, 3);
});

// A kept session can die while its spare waits (its backend terminated, its server
// restarted): the hand-over notices and connects again, within the same attempt.
ctx.it('a spare whose kept admin session died (backend ended, server restarted) still hands over on a new connection', async () => {
  assert.ok(await fullPool());
  for (const round of ['backend', 'server']) {
    const spares = spareDirs();
    for (const id of spares) {
      if (round === 'backend') {
        for (const pid of adminBackends(id)) process.kill(pid, 'SIGTERM');
      } else {
        // a fast restart of the spare's server under the same files: every session ends
        const pm = pidOf(id);
        const data = path.join(ctx.server.home, 'instances', id, 'data');
        const argv = fs.readFileSync(`/proc/${pm}/cmdline`, 'utf8').split('\0').filter(Boolean);
        process.kill(pm, 'SIGINT');
        assert.ok(await until(() => !alive(pm), { timeoutMs: 20000 }), `spare ${id}'s server stopped`);
        const st = fs.statSync(data);
        spawn(argv[0], argv.slice(1), { cwd: data, uid: st.uid, gid: st.gid, detached: true, stdio: 'ignore' }).unref();
        assert.ok(await until(() => { try { return /\nready/.test(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8')); } catch { return false; } }, { timeoutMs: 30000 }), `spare ${id}'s server is up again`);
      }
    }
    for (const id of spares) assert.ok(await until(() => adminBackends(id).length === 0, { timeoutMs: 10000, intervalMs: 100 }), `spare ${id}'s session is gone (${round})`);
    const d = await createDb(`dead-session-${round}`);
    await waitReady(ctx.c, d.id, { timeoutMs: 60000 });
    const inst = instanceOf(ctx.server.home, d.id);
    assert.ok(spares.includes(inst), `${round}: the database took one of the spares`);
    const log = ctx.server.log();
    assert.match(log, new RegExp(`db=${inst} msg="the kept admin session broke`), `${round}: the dead session was noticed`);
    assert.match(log, new RegExp(`db=${inst} msg="created a role \\(connect \\d+ ms`), `${round}: the role was made on a new connection`);
    // within the first attempt: no failure, no retry
    assert.deepEqual(provisionLines(d.id).map((l) => /msg="db_provision: (\w+)/.exec(l)[1]), ['attempt', 'done'], `${round}: ${provisionLines(d.id).join('\n')}`);
    const cs = d.connections[0].endpoints.direct.connectionString;
    assert.equal((await sql(cs, 'SELECT 4 AS four'))[0].four, 4);
    assert.ok(await fullPool(), `${round}: the pool refills`);
  }
}, { timeout: 180000 });

ctx.it('an empty database costs at most 24 MiB of disk', async () => {
  const inst = instanceOf(ctx.server.home, S.db.id);
  const kib = Number(execFileSync('du', ['-sk', path.join(ctx.server.home, 'instances', inst)], { encoding: 'utf8' }).split('\t')[0]);
  console.log(`# du -s of an empty database's instance: ${(kib / 1024).toFixed(1)} MiB`);
  assert.ok(kib <= 24 * 1024, `${kib} KiB > 24 MiB`);
});

ctx.it('90 direct connections to one database at once, beside the pooled endpoint', async () => {
  const cs = S.db.connections[0].endpoints.direct.connectionString;
  const clients = [];
  try {
    for (let i = 0; i < 90; i += 15) clients.push(...(await Promise.all(Array.from({ length: 15 }, () => connect(cs, { timeoutMs: 30000 })))));
    const rs = await Promise.all(clients.map((c, i) => c.query('SELECT $1::int AS i', [i])));
    rs.forEach((r, i) => assert.equal(r.rows[0].i, i));
    const pooled = await connect(S.db.connections[0].endpoints.pooled.connectionString, { timeoutMs: 30000 });
    clients.push(pooled);
    assert.equal((await pooled.query('SELECT 2 AS two')).rows[0].two, 2);
  } finally {
    await Promise.all(clients.map(closeQuietly));
  }
});

ctx.it('20 concurrent creates cause a handful of PgBouncer reloads, not 20', async () => {
  const r0 = await metric('pgfleet_pooler_reloads_total');
  const ds = await Promise.all(Array.from({ length: 20 }, (_, i) => createDb(`burst-${i}`)));
  await Promise.all(ds.map((d) => waitReady(ctx.c, d.id, { timeoutMs: 150000 })));
  // the pooled endpoint follows ready: every database there shortly after
  const last = ds[ds.length - 1].connections[0].endpoints.pooled.connectionString;
  assert.ok(await until(async () => { try { await sql(last, 'SELECT 1'); return true; } catch { return false; } }, { timeoutMs: 10000, intervalMs: 100 }), 'the pooled endpoint serves the new databases');
  const reloads = (await metric('pgfleet_pooler_reloads_total')) - r0;
  console.log(`# 20 concurrent creates: ${reloads} PgBouncer reloads`);
  assert.ok(reloads >= 1 && reloads <= 10, `${reloads} reloads for 20 creates`);
  S.burst = ds;
}, { timeout: 240000 });

// A home of an older version: servers there named their socket after the database's public
// port (.s.PGSQL.<port>). serve's start moves such a running server onto .s.PGSQL.5432 (a
// fast restart), and the database works through the data path.
ctx.it('upgrade: a server running on its socket named after the public port is restarted onto .s.PGSQL.5432', async () => {
  const inst = instanceOf(ctx.server.home, S.db.id);
  const data = path.join(ctx.server.home, 'instances', inst, 'data');
  const publicPort = S.db.connections[0].endpoints.direct.port;
  const [pm] = postmasters(ctx.server.home).filter((p) => p.instance === inst);
  assert.ok(pm, 'the database\'s server runs');
  const argv = fs.readFileSync(`/proc/${pm.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  await ctx.server.kill9(); // the server outlives serve, as after an upgrade's stop
  process.kill(pm.pid, 'SIGINT');
  assert.ok(await until(() => !alive(pm.pid), { timeoutMs: 20000 }), 'the server stopped');
  const conf = path.join(data, 'postgresql.conf');
  fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8').replace(/^port = \d+$/m, `port = ${publicPort}`));
  const owner = fs.statSync(data).uid;
  const old = spawn(argv[0], argv.slice(1), { cwd: data, uid: owner, gid: fs.statSync(data).gid, detached: true, stdio: 'ignore' });
  old.unref();
  const oldSock = path.join(ctx.server.home, 'run', inst, `.s.PGSQL.${publicPort}`);
  assert.ok(await until(() => fs.existsSync(oldSock) && /\nready/.test(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8')), { timeoutMs: 30000 }), 'the old-style server is up');
  await ctx.server.start();
  await waitReady(ctx.c, S.db.id);
  assert.ok(await until(() => !alive(old.pid) && fs.existsSync(path.join(ctx.server.home, 'run', inst, '.s.PGSQL.5432')), { timeoutMs: 60000 }), 'moved onto .s.PGSQL.5432');
  assert.match(ctx.server.log(), new RegExp(`db=${inst} msg="the server pid=${old.pid} runs on port ${publicPort}, not 5432: restarting it"`));
  const cs = S.db.connections[0].endpoints.direct.connectionString;
  assert.ok(await until(async () => { try { return (await sql(cs, 'SELECT 5 AS five'))[0].five === 5; } catch { return false; } }, { timeoutMs: 30000, intervalMs: 200 }), 'reachable through the data path');
});

ctx.it('kill -9 and restart: the running spares are adopted, not started twice', async () => {
  assert.ok(await fullPool());
  const before = new Map(sparePms().map((p) => [p.instance, p.pid]));
  await ctx.server.kill9();
  await ctx.server.start();
  assert.ok(await fullPool(), 'the pool is full again after the restart');
  const after = new Map(sparePms().map((p) => [p.instance, p.pid]));
  assert.deepEqual([...after].sort(), [...before].sort(), 'the same spare servers, adopted');
  assert.match(ctx.server.log(), /adopted the running spare/);
  // the sessions of the killed serve ended with it; the adopted spares keep new ones
  for (const id of after.keys()) assert.ok(await until(() => adminBackends(id).length === 1, { timeoutMs: 10000, intervalMs: 100 }), `adopted spare ${id} keeps one admin session`);
});

ctx.it('restart with --spares 0: the spares are removed, no postmaster of theirs left', async () => {
  const pids = sparePms().map((p) => p.pid);
  assert.equal(pids.length, SPARES);
  ctx.server.extraArgs = ctx.server.extraArgs.map((a, i, all) => (all[i - 1] === '--spares' ? '0' : a));
  await ctx.server.restart();
  assert.ok(await until(() => spareDirs().length === 0 && pids.every((p) => !alive(p)), { timeoutMs: 30000 }), `spares left: ${spareDirs()}`);
  assert.equal(await metric('pgfleet_spares_ready'), 0);
  // and a create still works without a pool
  const d = await createDb('cold');
  await waitReady(ctx.c, d.id, { timeoutMs: 60000 });
  assert.match(ctx.server.log(), new RegExp(`db=${d.id} msg="attached to the new instance in_`));
});

ctx.itShutsDownCleanly();
