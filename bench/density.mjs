// Density (issue figure, not pass/fail): N databases on this machine, each a real PostgreSQL
// server that sleeps when idle (--suspend-after BENCH_SUSPEND_S), then
//  - memory of every process of the fleet (PSS: shared pages split between their users),
//    by kind (postgres, pgbouncer, pgfleet, datapath), and pgfleet's RSS: once with every
//    database asleep, once with BENCH_LOADED of them under pgbench;
//  - disk: instances, the backup repository, the whole home (du -sk);
//  - GET /v1/databases/{id} and a page of GET /v1/databases?limit=100: p50 and p99, idle and
//    under the pgbench load;
//  - CPU of the idle fleet over BENCH_IDLE_S seconds (all its processes, % of one core);
//  - the first backups of the N new databases: how long until all are taken, repository size.
// From these, per-database costs and a projection for 10,000 databases (docs/density.md).
//   BENCH_DENSITY_DBS (default 500), BENCH_CREATE_S (default 0: no limit; else creates stop
//   after this many seconds and N is what was created), BENCH_MAX_AWAKE (default 400: creates
//   wait while more databases are awake, as a new one stays awake until its first backup),
//   BENCH_SUSPEND_S (default 10), BENCH_LOADED (default 50), BENCH_LOAD_S (default 60),
//   BENCH_IDLE_S (default 30), BENCH_SAMPLES (default 300), BENCH_BACKUP_WAIT_S (default 600:
//   the first backups are timed over what is done by then)
import { spawn, execFileSync } from 'node:child_process';
import { rmSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchServer, sleep, pct } from './lib.mjs';

const WANT = Number(process.env.BENCH_DENSITY_DBS ?? 500);
const CREATE_S = Number(process.env.BENCH_CREATE_S ?? 0);
const MAX_AWAKE = Number(process.env.BENCH_MAX_AWAKE ?? 400);
const SUSPEND_S = Number(process.env.BENCH_SUSPEND_S ?? 10);
const LOADED = Number(process.env.BENCH_LOADED ?? 50);
const LOAD_S = Number(process.env.BENCH_LOAD_S ?? 60);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 30);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);
const BACKUP_WAIT_S = Number(process.env.BENCH_BACKUP_WAIT_S ?? 600);
const SPARES = 4;

// others on this host hold ports in the range too: the allocator skips them
const server = await benchServer({ name: 'density', range: [20000, 29999], metrics: true, unlimited: true,
  flags: ['--backup-interval', '0', '--workers', '4', '--spares', String(SPARES), '--suspend-after', String(SUSPEND_S)] });
const { home, base, H } = server;
const metricsPort = server.metricsPort;
const api = (method, path, body) => server.api(method, path, body);
async function metrics() {
  // a kept-alive socket the server closed meanwhile fails one fetch (EPIPE): asked again
  for (let i = 0; ; i++) {
    try {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return text.split('\n').filter((l) => l && !l.startsWith('#'));
    } catch (e) {
      if (i >= 4) throw e;
      await sleep(200);
    }
  }
}
const gauge = (m, name) => Number((m.find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{')) ?? ' NaN').split(' ').pop());
async function timed(path) {
  const t0 = performance.now();
  const r = await fetch(base + path, { headers: H });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`${path} -> ${r.status}`);
  return performance.now() - t0;
}
const t = () => `${Math.round((Date.now() - t0) / 1000)} s`;

// every process whose command line names the home, and their descendants
function fleet() {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8', maxBuffer: 64 << 20 }).trim().split('\n')
    .map((l) => { const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l); return { pid: +m[1], ppid: +m[2], args: m[3] }; });
  const set = new Map(rows.filter((r) => (r.args.includes(home) && !/^pgbench/.test(r.args)) || r.pid === server.pid).map((r) => [r.pid, r]));
  for (let grew = true; grew;) {
    grew = false;
    for (const r of rows) if (!set.has(r.pid) && set.has(r.ppid)) { set.set(r.pid, r); grew = true; }
  }
  return [...set.values()];
}
const kind = (p) => (p.pid === server.pid ? 'pgfleet' : /pgbouncer/.test(p.args) ? 'pgbouncer' : /pgbackrest/.test(p.args) ? 'pgbackrest'
  : / datapath /.test(p.args) ? 'datapath' : 'postgres');
function pssKiB(pid) {
  try { return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]); } catch { return 0; }
}
function cpuTicks(pid) {
  try { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); } catch { return 0; }
}
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const duKiB = (p) => Number(execFileSync('du', ['-sk', p], { encoding: 'utf8' }).split('\t')[0]);
const MiB = (kib) => (kib / 1024).toFixed(1);
function memory(label) {
  const procs = fleet();
  const byKind = {};
  for (const p of procs) { const k = kind(p); byKind[k] = byKind[k] || { n: 0, pss: 0 }; byKind[k].n++; byKind[k].pss += pssKiB(p.pid); }
  const total = Object.values(byKind).reduce((s, v) => s + v.pss, 0);
  console.log(`density: memory (PSS) ${label}: ${MiB(total)} MiB in ${procs.length} processes; ` +
    Object.entries(byKind).map(([k, v]) => `${k} ${MiB(v.pss)} MiB/${v.n}`).join(', ') + `; pgfleet RSS ${MiB(rssKiB(server.pid))} MiB`);
  return { total, byKind };
}
async function apiLatency(label, ids) {
  const get = [], list = [];
  const mid = await api('GET', `/v1/databases?limit=100`);
  const cursor = mid.pagination?.nextCursor;
  for (let i = 0; i < SAMPLES; i++) {
    get.push(await timed(`/v1/databases/${ids[Math.floor(Math.random() * ids.length)]}`));
    list.push(await timed(`/v1/databases?limit=100${cursor ? `&cursor=${cursor}` : ''}`));
  }
  console.log(`density: ${label}: GET /v1/databases/{id} p50 ${pct(get, 50).toFixed(1)} ms, p99 ${pct(get, 99).toFixed(1)} ms; GET /v1/databases?limit=100 p50 ${pct(list, 50).toFixed(1)} ms, p99 ${pct(list, 99).toFixed(1)} ms (${SAMPLES} each, one client)`);
}
const libpq = (cs) => cs.replace(/\?.*$/, '?sslmode=require');
let t0 = Date.now();
const pgbenches = [];
const pgbenchProcs = [];

try {
  await server.start();
  console.log(`density: df of the home's filesystem before: ${execFileSync('df', ['-h', home], { encoding: 'utf8' }).trim().split('\n').pop()}`);
  await sleep(10000); // the spares start
  const empty = memory(`before any database (${SPARES} spares)`);
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench-density', createDatabase: false });
  const dbs = [];
  t0 = Date.now();
  let throttled = 0;
  for (let i = 0; i < WANT; i += 8) {
    if (CREATE_S > 0 && Date.now() - t0 > CREATE_S * 1000) { console.log(`density: create time box of ${CREATE_S} s reached at ${dbs.length}`); break; }
    // a new database stays awake (queued first backup): bound how many run at once
    for (let k = 0; k < 600 && gauge(await metrics(), 'pgfleet_databases_awake') > MAX_AWAKE; k++) { throttled++; await sleep(1000); }
    const batch = [];
    for (let j = i; j < Math.min(WANT, i + 8); j++) batch.push(api('POST', '/v1/databases', { projectId: project.id, name: `d-${j}` }));
    for (const r of await Promise.all(batch)) dbs.push(r.data);
    if (dbs.length % 100 === 0) console.log(`density: ${dbs.length}/${WANT} created (${t()}, awake ${gauge(await metrics(), 'pgfleet_databases_awake')})`);
  }
  const N = dbs.length;
  const ids = dbs.map((d) => d.id);
  const readyCount = async () => gauge(await metrics(), 'pgfleet_databases{status="ready"}');
  while ((await readyCount()) < N) await sleep(1000);
  console.log(`density: ${N} databases ready ${t()} after the first create (batches of 8 concurrent creates; ${throttled} s waiting for awake <= ${MAX_AWAKE})`);
  // the first full backup of each new database is queued when it becomes ready
  const backedUp = async () => (await metrics()).filter((l) => l.startsWith('pgfleet_database_last_backup_time_seconds{') && Number(l.split(' ').pop()) > 0).length;
  let done = 0;
  for (const end = Date.now() + BACKUP_WAIT_S * 1000; Date.now() < end; await sleep(2000)) {
    done = await backedUp();
    if (done >= N) break;
  }
  const tBackups = Date.now();
  const repoKiB = duKiB(join(home, 'backup'));
  const perBackupMs = (tBackups - t0) / Math.max(1, done); // from the first create: backups start with the first ready
  console.log(`density: first backups: ${done}/${N} done ${t()} after the first create (${perBackupMs.toFixed(0)} ms of wall time each, 2 backup workers, creates running beside them); repository ${MiB(repoKiB)} MiB (${MiB(repoKiB / Math.max(1, done))} MiB per backed-up database)`);

  // every database asleep (the spares stay up): wait for the data path's count
  let m;
  for (let k = 0; k < 600; k++, await sleep(1000)) { m = await metrics(); if (gauge(m, 'pgfleet_databases_asleep') >= N) break; }
  console.log(`density: ${t()}: awake ${gauge(m, 'pgfleet_databases_awake')}, asleep ${gauge(m, 'pgfleet_databases_asleep')}`);
  await sleep(5000);
  const asleep = memory(`with ${N} databases asleep + ${SPARES} spares`);
  const instKiB = duKiB(join(home, 'instances'));
  const homeKiB = duKiB(home);
  console.log(`density: disk: instances ${MiB(instKiB)} MiB (${MiB(instKiB / (N + SPARES))} MiB each), home ${MiB(homeKiB)} MiB`);
  await apiLatency(`${N} asleep`, ids);

  // idle CPU: every process of the fleet, over IDLE_S seconds
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
  const a = new Map(fleet().map((p) => [p.pid, cpuTicks(p.pid)]));
  await sleep(IDLE_S * 1000);
  let ticks = 0;
  for (const p of fleet()) ticks += cpuTicks(p.pid) - (a.get(p.pid) ?? 0);
  const cpuPct = (100 * ticks) / hz / IDLE_S;
  console.log(`density: idle fleet CPU over ${IDLE_S} s (${N} asleep, ${SPARES} spares awake): ${cpuPct.toFixed(1)}% of one core`);

  // LOADED databases under pgbench (select-only, rate-limited: the machine is shared), the rest asleep
  const loaded = dbs.slice(0, Math.min(LOADED, N)).map((d) => libpq(d.connections[0].endpoints.direct.connectionString));
  const tInit = Date.now();
  for (const cs of loaded) execFileSync('pgbench', ['-i', '-q', '-s', '1', cs], { stdio: 'ignore', timeout: 120000 });
  console.log(`density: pgbench -i -s 1 of ${loaded.length} databases (woken by it) in ${Math.round((Date.now() - tInit) / 1000)} s`);
  const tpsOut = [];
  for (const cs of loaded) {
    const p = spawn('pgbench', ['-n', '-S', '-c', '2', '-R', '20', '-T', String(LOAD_S + 30), cs], { stdio: ['ignore', 'pipe', 'ignore'] });
    pgbenchProcs.push(p);
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    pgbenches.push(new Promise((r) => p.on('exit', () => { tpsOut.push(out); r(); })));
  }
  await sleep(10000);
  m = await metrics();
  console.log(`density: under load: awake ${gauge(m, 'pgfleet_databases_awake')}, asleep ${gauge(m, 'pgfleet_databases_asleep')}`);
  const busy = memory(`with ${loaded.length} databases under pgbench, ${N - loaded.length} asleep, ${SPARES} spares`);
  await apiLatency(`${loaded.length} under pgbench`, ids);
  await Promise.all(pgbenches);
  const tps = tpsOut.map((o) => Number((/tps = ([\d.]+)/.exec(o) ?? [0, NaN])[1]));
  console.log(`density: pgbench -S -c 2 -R 20 on ${loaded.length} databases: ${tps.reduce((s, x) => s + x, 0).toFixed(0)} TPS in all`);

  const awakeKiB = (busy.total - asleep.total) / Math.max(1, loaded.length);
  // a sleeping database has no process: what it costs is pgfleet's, the data path's and PgBouncer's state
  const sleepKiB = ['pgfleet', 'datapath', 'pgbouncer'].reduce((s, k) => s + (asleep.byKind[k]?.pss ?? 0) - (empty.byKind[k]?.pss ?? 0), 0) / N;
  const bkKiB = repoKiB / Math.max(1, done);
  console.log(`density: per database: awake (under pgbench) ${MiB(awakeKiB)} MiB PSS, asleep ${(sleepKiB).toFixed(1)} KiB PSS, disk ${MiB(instKiB / (N + SPARES))} MiB, first backup ${MiB(bkKiB)} MiB`);
  console.log(`density: projection for 10,000 databases, 500 awake: memory ${((500 * awakeKiB + 10000 * sleepKiB) / 1048576).toFixed(1)} GiB PSS, disk ${(instKiB / (N + SPARES) * 10000 / 1048576).toFixed(1)} GiB, first backups ${(perBackupMs * 10000 / 3600000).toFixed(1)} h, backups ${(bkKiB * 10000 / 1048576).toFixed(1)} GiB`);
} finally {
  for (const p of pgbenchProcs) if (p.exitCode === null) p.kill('SIGTERM');
  await server.stop();
  if (!process.env.BENCH_KEEP) rmSync(home, { recursive: true, force: true });
}
