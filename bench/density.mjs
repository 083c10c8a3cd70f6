// Density (issue figure, not pass/fail): N databases on this machine, each a real PostgreSQL
// server that sleeps when idle (--suspend-after BENCH_SUSPEND_S), then
//  - memory of every process of the fleet (PSS: shared pages split between their users),
//    by kind (postgres, pgbouncer, pgfleet, datapath), and pgfleet's RSS: once with every
//    database asleep, once with BENCH_LOADED of them under pgbench;
//  - disk: instances, the backup repository, the whole home (du -sk);
//  - GET /v1/databases/{id} and a page of GET /v1/databases?limit=100: p50 and p99, idle and
//    under the pgbench load;
//  - what the first backups of the N new databases cost: the wall time until none is queued
//    or running, the CPU seconds of the fleet meanwhile (by kind: pgBackRest's backups, its
//    WAL archiving and checks, the servers, pgfleet), the repository's growth;
//  - CPU of the idle fleet over BENCH_IDLE_S seconds once those backups are done and every
//    database sleeps (all its processes, % of one core);
//  - the pgbench TPS of each of the BENCH_LOADED woken databases and in all.
// From these, per-database costs and a projection for 10,000 databases (docs/density.md).
//   BENCH_DENSITY_DBS (default 500), BENCH_CREATE_S (default 0: no limit; else creates stop
//   after this many seconds and N is what was created), BENCH_MAX_AWAKE (default 400: creates
//   wait while more databases are awake, as a new one stays awake until its first backup),
//   BENCH_SUSPEND_S (default 10), BENCH_LOADED (default 50), BENCH_LOAD_S (default 60),
//   BENCH_IDLE_S (default 30), BENCH_SAMPLES (default 300), BENCH_BACKUP_WAIT_S (default 0: wait
//   for every first backup; else at most this many seconds after the creates, and the idle CPU
//   is then labelled as measured beside the backups still running)
import { spawn, execFileSync } from 'node:child_process';
import { rmSync, readFileSync, readdirSync } from 'node:fs';
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
const BACKUP_WAIT_S = Number(process.env.BENCH_BACKUP_WAIT_S ?? 0);
const SPARES = 4;

// others on this host hold ports in the range too: the allocator skips them
const server = await benchServer({ name: 'density', range: [20000, 29999], metrics: true, unlimited: true,
  flags: ['--backup-interval', '0', '--workers', '4', '--spares', String(SPARES), '--suspend-after', String(SUSPEND_S)] });
const { home, base, H } = server;
const api = (method, path, body) => server.api(method, path, body);
const metrics = () => server.metrics();
const gauge = (m, name) => m.get(name) ?? NaN;
async function timed(path) {
  const t0 = performance.now();
  const r = await fetch(base + path, { headers: H });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`${path} -> ${r.status}`);
  return performance.now() - t0;
}
const t = () => `${Math.round((Date.now() - t0) / 1000)} s`;

// every process whose command line names the home, and their descendants
const fleet = () => fleetOf(procTable());
const kind = (p) => (p.pid === server.pid ? 'pgfleet' : /pgbouncer/.test(p.args) ? 'pgbouncer' : /pgbackrest/.test(p.args) ? 'pgbackrest'
  : / datapath /.test(p.args) ? 'datapath' : 'postgres');
function pssKiB(pid) {
  try { return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]); } catch { return 0; }
}

// CPU of the fleet over a window. Exactly: the sum over its live processes of their own CPU
// and their reaped children's (a process that ended during the window is in its parent's
// cutime), at the end minus at the start. By kind, sampled: each process's own CPU when last
// seen (one that lived less than a sampling period is missed, and the CPU since its last
// sample).
const HZ = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
const argsSeen = new Map(); // "pid:starttime" -> command line
function procTable() {
  const t = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let f;
    try { f = readFileSync(`/proc/${name}/stat`, 'utf8'); } catch { continue; }
    const r = f.slice(f.lastIndexOf(') ') + 2).split(' ');
    const p = { pid: +name, ppid: +r[1], own: +r[11] + +r[12], reaped: +r[13] + +r[14], key: `${name}:${r[19]}` };
    if (!argsSeen.has(p.key)) {
      try { argsSeen.set(p.key, readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()); } catch { argsSeen.set(p.key, ''); }
    }
    p.args = argsSeen.get(p.key);
    t.set(p.pid, p);
  }
  return t;
}
function fleetOf(t) {
  const set = new Set([...t.values()].filter((p) => p.pid === server.pid || (p.args.includes(home) && !/^pgbench/.test(p.args))).map((p) => p.pid));
  const kids = new Map();
  for (const p of t.values()) { if (!kids.has(p.ppid)) kids.set(p.ppid, []); kids.get(p.ppid).push(p.pid); }
  for (const stack = [...set]; stack.length;) for (const c of kids.get(stack.pop()) ?? []) if (!set.has(c)) { set.add(c); stack.push(c); }
  return [...set].map((pid) => t.get(pid));
}
// pgBackRest by its command (the last word): a backup (and its local workers, its expire), or
// the WAL archiving and checks of the servers (archive-push, check: every sleep runs one)
const cpuKind = (p) => {
  const k = kind(p);
  if (k !== 'pgbackrest') return k;
  return /\s(backup|backup:\w+|expire)$/.test(p.args) ? 'pgbackrest backup' : 'pgbackrest archive/check';
};
class CpuWindow {
  constructor() {
    this.t0 = Date.now();
    this.seen = new Map(); // key -> { kind, base, last }
    const t = procTable();
    this.exact0 = this.exact(t);
    this.sample(t, true);
  }

  exact(t) { return fleetOf(t).reduce((s, p) => s + p.own + p.reaped, 0); }

  sample(t = procTable(), first = false) {
    for (const p of fleetOf(t)) {
      let e = this.seen.get(p.key);
      if (!e) this.seen.set(p.key, (e = { kind: cpuKind(p), base: first ? p.own : 0 }));
      e.last = p.own;
    }
  }

  // { s: wall seconds, total: exact CPU seconds, byKind: sampled CPU seconds by kind, sampled }
  end() {
    const t = procTable();
    this.sample(t);
    const byKind = {};
    for (const e of this.seen.values()) byKind[e.kind] = (byKind[e.kind] ?? 0) + (e.last - e.base) / HZ;
    return { s: (Date.now() - this.t0) / 1000, total: (this.exact(t) - this.exact0) / HZ, byKind, sampled: Object.values(byKind).reduce((a, b) => a + b, 0) };
  }
}
const cpuLine = (w) => `${w.total.toFixed(1)} CPU s in all (${(100 * w.total / w.s).toFixed(1)}% of one core over ${w.s.toFixed(0)} s); sampled by kind: ` +
  Object.entries(w.byKind).filter(([, v]) => v >= 0.05).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ') +
  ` (${w.sampled.toFixed(1)} s of the ${w.total.toFixed(1)} seen by sampling every second)`;
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
let sampler = null;
const pgbenchProcs = [];

try {
  await server.start();
  console.log(`density: df of the home's filesystem before: ${execFileSync('df', ['-h', home], { encoding: 'utf8' }).trim().split('\n').pop()}`);
  await sleep(10000); // the spares start
  const empty = memory(`before any database (${SPARES} spares)`);
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench-density', createDatabase: false });
  const dbs = [];
  const repo0KiB = duKiB(join(home, 'backup'));
  t0 = Date.now();
  // CPU from the first create on (creates, sleeps and first backups), and from the last
  // database ready on (the first backups still running, and sleeps)
  const windows = [new CpuWindow()];
  sampler = setInterval(() => { const pt = procTable(); for (const w of windows) w.sample(pt); }, 1000);
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
  const tReady = Date.now();
  windows.push(new CpuWindow());
  // the first full backup of each new database is queued when it becomes ready: wait until
  // none is queued or running (and each database has one, unless some failed for good)
  const backedUp = (mm) => [...mm].filter(([k, v]) => k.startsWith('pgfleet_database_last_backup_time_seconds{') && v > 0).length;
  const backupsQueued = (mm) => ['pending', 'running'].reduce((q, st) => q + gauge(mm, `pgfleet_ops_queued{kind="db_backup",state="${st}"}`), 0);
  let done = 0, queued = 0, idleSince = 0;
  for (const end = BACKUP_WAIT_S > 0 ? Date.now() + BACKUP_WAIT_S * 1000 : Infinity; ; await sleep(1000)) {
    const mm = await metrics();
    done = backedUp(mm);
    queued = backupsQueued(mm);
    idleSince = queued > 0 ? 0 : idleSince || Date.now();
    if (queued === 0 && (done >= N || Date.now() - idleSince > 10000)) break;
    if (Date.now() > end) break;
  }
  clearInterval(sampler);
  const [wAll, wTail] = windows.map((w) => w.end());
  const mb = await metrics();
  const backupsDone = queued === 0;
  const opS = gauge(mb, 'pgfleet_op_seconds_total{kind="db_backup"}');
  const failed = gauge(mb, 'pgfleet_op_attempts_total{kind="db_backup",outcome="failed"}');
  const retried = gauge(mb, 'pgfleet_op_attempts_total{kind="db_backup",outcome="retried"}');
  const repoKiB = duKiB(join(home, 'backup')) - repo0KiB;
  const perBackupMs = (Date.now() - t0) / Math.max(1, done); // from the first create: backups start with the first ready
  console.log(`density: first backups of ${N} new databases: ${done}/${N} done ${t()} after the first create, ` +
    `${((Date.now() - tReady) / 1000).toFixed(0)} s after the last was ready (${backupsDone ? 'none queued or running' : `${queued} still queued or running: the wait of ${BACKUP_WAIT_S} s ended`}; ` +
    `${failed} failed, ${retried} retried); ${perBackupMs.toFixed(0)} ms of wall time per backup from the first create (2 backup workers, creates running beside them); ` +
    `the backup ops took ${opS.toFixed(0)} s in all (${(1000 * opS / Math.max(1, done)).toFixed(0)} ms each)`);
  console.log(`density: first backups: repository grew by ${MiB(repoKiB)} MiB (${MiB(repoKiB / Math.max(1, done))} MiB per backed-up database, WAL archive included)`);
  console.log(`density: first backups: fleet CPU from the first create until the backups were done (creates, sleeps, backups): ${cpuLine(wAll)}`);
  console.log(`density: first backups: fleet CPU from the last database ready until the backups were done (backups and sleeps only): ${cpuLine(wTail)}`);

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

  // idle CPU: every process of the fleet, over IDLE_S seconds, once the first backups are done
  const wIdle = new CpuWindow();
  await sleep(IDLE_S * 1000);
  const idle = wIdle.end();
  console.log(`density: idle fleet CPU over ${IDLE_S} s (${N} asleep, ${SPARES} spares awake, ${backupsDone ? 'no backup queued or running' : `${queued} first backups still queued or running`}): ` +
    `${(100 * idle.total / idle.s).toFixed(1)}% of one core; ${cpuLine(idle)}`);

  // LOADED databases under pgbench (select-only, rate-limited: the machine is shared), the rest asleep
  const loaded = dbs.slice(0, Math.min(LOADED, N)).map((d) => libpq(d.connections[0].endpoints.direct.connectionString));
  const tInit = Date.now();
  for (const cs of loaded) execFileSync('pgbench', ['-i', '-q', '-s', '1', cs], { stdio: 'ignore', timeout: 120000 });
  console.log(`density: pgbench -i -s 1 of ${loaded.length} databases (woken by it) in ${Math.round((Date.now() - tInit) / 1000)} s`);
  // pgbench's own summary: the final "tps = X (without initial connection time)" line (its
  // progress lines, -P, say "N tps"); read once its output is closed, not at its exit, which
  // can come before the last of its stdout has been read
  const runs = loaded.map((cs, i) => {
    const p = spawn('pgbench', ['-n', '-S', '-c', '2', '-R', '20', '-T', String(LOAD_S + 30), cs], { stdio: ['ignore', 'pipe', 'pipe'] });
    pgbenchProcs.push(p);
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    return new Promise((r) => p.on('close', (code, signal) => {
      const tpsLines = [...out.matchAll(/^tps = ([\d.]+)/gm)];
      r({ i, code, signal, tps: tpsLines.length ? Number(tpsLines.at(-1)[1]) : NaN, why: err.trim().split('\n').pop() ?? '' });
    }));
  });
  await sleep(10000);
  m = await metrics();
  console.log(`density: under load: awake ${gauge(m, 'pgfleet_databases_awake')}, asleep ${gauge(m, 'pgfleet_databases_asleep')}`);
  const busy = memory(`with ${loaded.length} databases under pgbench, ${N - loaded.length} asleep, ${SPARES} spares`);
  await apiLatency(`${loaded.length} under pgbench`, ids);
  const results = await Promise.all(runs);
  const ok = results.filter((r) => Number.isFinite(r.tps));
  const tps = ok.map((r) => r.tps);
  console.log(`density: pgbench -n -S -c 2 -R 20 -T ${LOAD_S + 30} on each of ${loaded.length} databases: ${tps.reduce((a2, x) => a2 + x, 0).toFixed(1)} TPS in all over ${ok.length} runs ` +
    `(per database: min ${Math.min(...tps).toFixed(1)}, p50 ${pct(tps, 50).toFixed(1)}, max ${Math.max(...tps).toFixed(1)})`);
  console.log(`density: pgbench TPS per database (d-0..d-${loaded.length - 1}): ${results.map((r) => (Number.isFinite(r.tps) ? r.tps.toFixed(1) : 'failed')).join(' ')}`);
  for (const r of results.filter((x) => !Number.isFinite(x.tps))) console.log(`density: pgbench on d-${r.i} printed no tps (exit ${r.code ?? r.signal}): ${r.why}`);

  const awakeKiB = (busy.total - asleep.total) / Math.max(1, loaded.length);
  // a sleeping database has no process: what it costs is pgfleet's, the data path's and PgBouncer's state
  const sleepKiB = ['pgfleet', 'datapath', 'pgbouncer'].reduce((s, k) => s + (asleep.byKind[k]?.pss ?? 0) - (empty.byKind[k]?.pss ?? 0), 0) / N;
  const bkKiB = repoKiB / Math.max(1, done);
  console.log(`density: per database: awake (under pgbench) ${MiB(awakeKiB)} MiB PSS, asleep ${(sleepKiB).toFixed(1)} KiB PSS, disk ${MiB(instKiB / (N + SPARES))} MiB, first backup ${MiB(bkKiB)} MiB`);
  console.log(`density: projection for 10,000 databases, 500 awake: memory ${((500 * awakeKiB + 10000 * sleepKiB) / 1048576).toFixed(1)} GiB PSS, disk ${(instKiB / (N + SPARES) * 10000 / 1048576).toFixed(1)} GiB, first backups ${(perBackupMs * 10000 / 3600000).toFixed(1)} h, backups ${(bkKiB * 10000 / 1048576).toFixed(1)} GiB`);
} finally {
  clearInterval(sampler);
  for (const p of pgbenchProcs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
  await server.stop();
  if (!process.env.BENCH_KEEP) rmSync(home, { recursive: true, force: true });
}
