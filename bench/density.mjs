// Density (issue figure, not pass/fail): N databases on this machine, each a real
// PostgreSQL server (awake: this pgfleet has no sleeping databases yet), then
//  - memory of every process of the fleet (PSS: shared pages split between their users),
//    by kind (postgres, pgbouncer, pgfleet), and pgfleet's RSS;
//  - disk: instances, the backup repository, the whole home (du -sk);
//  - GET /v1/databases/{id} and a page of GET /v1/databases?limit=100: p50 and p99;
//  - CPU of the idle fleet over BENCH_IDLE_S seconds (all its processes, % of one core);
//  - the first backups of the N new databases: how long until all are taken, repository size.
// From these, per-database costs and a projection for 10,000 databases (docs/density.md).
//   BENCH_DENSITY_DBS (default 500), BENCH_IDLE_S (default 30), BENCH_SAMPLES (default 300),
//   BENCH_BACKUP_WAIT_S (default 600: the first backups are timed over what is done by then)
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { benchServer, sleep, pct } from './lib.mjs';

const N = Number(process.env.BENCH_DENSITY_DBS ?? 500);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 30);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);
const BACKUP_WAIT_S = Number(process.env.BENCH_BACKUP_WAIT_S ?? 600);
const SPARES = 4;

// others on this host hold ports in the range too: the allocator skips them
const server = await benchServer({ name: 'density', range: [20000, 29999], metrics: true, unlimited: true,
  flags: ['--backup-interval', '0', '--workers', '4', '--spares', String(SPARES)] });
const { home, base, H } = server;
const api = (method, path, body) => server.api(method, path, body);
async function metrics() {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return text.split('\n').filter((l) => l && !l.startsWith('#'));
}
async function timed(path) {
  const t0 = performance.now();
  const r = await fetch(base + path, { headers: H });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`${path} -> ${r.status}`);
  return performance.now() - t0;
}

// every process whose command line names the home, and their descendants
function fleet() {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8', maxBuffer: 64 << 20 }).trim().split('\n')
    .map((l) => { const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l); return { pid: +m[1], ppid: +m[2], args: m[3] }; });
  const set = new Map(rows.filter((r) => r.args.includes(home) || r.pid === server.pid).map((r) => [r.pid, r]));
  for (let grew = true; grew;) {
    grew = false;
    for (const r of rows) if (!set.has(r.pid) && set.has(r.ppid)) { set.set(r.pid, r); grew = true; }
  }
  return [...set.values()];
}
const kind = (p) => (p.pid === server.pid ? 'pgfleet' : /pgbouncer/.test(p.args) ? 'pgbouncer' : /pgbackrest/.test(p.args) ? 'pgbackrest' : 'postgres');
function pssKiB(pid) {
  try { return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]); } catch { return 0; }
}
function cpuTicks(pid) {
  try { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); } catch { return 0; }
}
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const duKiB = (p) => Number(execFileSync('du', ['-sk', p], { encoding: 'utf8' }).split('\t')[0]);
const MiB = (kib) => (kib / 1024).toFixed(1);

try {
  await server.start();
  console.log(`density: df of the home's filesystem before: ${execFileSync('df', ['-h', home], { encoding: 'utf8' }).trim().split('\n').pop()}`);
  const empty = fleet();
  const baseKiB = empty.reduce((s, p) => s + pssKiB(p.pid), 0);
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench-density', createDatabase: false });
  const ids = [];
  const t0 = Date.now();
  for (let i = 0; i < N; i += 8) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + 8); j++) batch.push(api('POST', '/v1/databases', { projectId: project.id, name: `d-${j}` }));
    for (const r of await Promise.all(batch)) ids.push(r.data.id);
    if (ids.length % 100 === 0) console.log(`density: ${ids.length}/${N} created (${Math.round((Date.now() - t0) / 1000)} s)`);
  }
  const readyCount = async () => { const m = await metrics(); return Number(m.find((l) => l.startsWith('pgfleet_databases{status="ready"}')).split(' ')[1]); };
  while ((await readyCount()) < N) await sleep(1000);
  const tReady = Date.now();
  console.log(`density: ${N} databases ready in ${Math.round((tReady - t0) / 1000)} s (batches of 8 concurrent creates)`);
  // the first full backup of each new database is queued when it becomes ready
  const backedUp = async () => (await metrics()).filter((l) => l.startsWith('pgfleet_database_last_backup_time_seconds{') && Number(l.split(' ').pop()) > 0).length;
  // time-boxed (BENCH_BACKUP_WAIT_S): the rate over what was done is the figure
  let done = 0;
  for (const end = Date.now() + BACKUP_WAIT_S * 1000; Date.now() < end; await sleep(2000)) {
    done = await backedUp();
    if (done >= N) break;
  }
  const tBackups = Date.now();
  const repoKiB = duKiB(join(home, 'backup'));
  const perBackupMs = (tBackups - t0) / Math.max(1, done); // from the first create: backups start with the first ready
  console.log(`density: first backups: ${done}/${N} done ${Math.round((tBackups - t0) / 1000)} s after the first create (${perBackupMs.toFixed(0)} ms of wall time each, 2 backup workers, creates running beside them); repository ${MiB(repoKiB)} MiB (${MiB(repoKiB / Math.max(1, done))} MiB per backed-up database)`);
  await sleep(5000); // settle: checkpoints after the backups

  const procs = fleet();
  const byKind = {};
  for (const p of procs) { const k = kind(p); byKind[k] = byKind[k] || { n: 0, pss: 0 }; byKind[k].n++; byKind[k].pss += pssKiB(p.pid); }
  const totalKiB = Object.values(byKind).reduce((s, v) => s + v.pss, 0);
  console.log(`density: memory (PSS) of the fleet with ${N} databases + ${SPARES} spares: ${MiB(totalKiB)} MiB in ${procs.length} processes; ` +
    Object.entries(byKind).map(([k, v]) => `${k} ${MiB(v.pss)} MiB/${v.n}`).join(', '));
  console.log(`density: per database ${MiB((totalKiB - baseKiB) / (N + SPARES))} MiB PSS; pgfleet RSS ${MiB(rssKiB(server.pid))} MiB`);
  const instKiB = duKiB(join(home, 'instances'));
  const homeKiB = duKiB(home);
  console.log(`density: disk: instances ${MiB(instKiB)} MiB (${MiB(instKiB / (N + SPARES))} MiB each), home ${MiB(homeKiB)} MiB`);

  // API latency with the fleet in place
  const get = [], list = [];
  const mid = await api('GET', `/v1/databases?limit=100`);
  const cursor = mid.pagination?.nextCursor;
  for (let i = 0; i < SAMPLES; i++) {
    get.push(await timed(`/v1/databases/${ids[Math.floor(Math.random() * ids.length)]}`));
    list.push(await timed(`/v1/databases?limit=100${cursor ? `&cursor=${cursor}` : ''}`));
  }
  console.log(`density: GET /v1/databases/{id} p50 ${pct(get, 50).toFixed(1)} ms, p99 ${pct(get, 99).toFixed(1)} ms; GET /v1/databases?limit=100 p50 ${pct(list, 50).toFixed(1)} ms, p99 ${pct(list, 99).toFixed(1)} ms (${SAMPLES} each, one client)`);

  // idle CPU: every process of the fleet, over IDLE_S seconds
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
  const a = new Map(fleet().map((p) => [p.pid, cpuTicks(p.pid)]));
  await sleep(IDLE_S * 1000);
  let ticks = 0;
  for (const p of fleet()) ticks += cpuTicks(p.pid) - (a.get(p.pid) ?? 0);
  const cpuPct = (100 * ticks) / hz / IDLE_S;
  console.log(`density: idle fleet CPU over ${IDLE_S} s: ${cpuPct.toFixed(1)}% of one core (${(cpuPct / N * 1000).toFixed(2)} milli-% per database)`);
  console.log(`density: projection for 10,000 awake databases: memory ${((totalKiB - baseKiB) / (N + SPARES) * 10000 / 1048576).toFixed(1)} GiB PSS, disk ${(instKiB / (N + SPARES) * 10000 / 1048576).toFixed(1)} GiB, idle CPU ${(cpuPct / N * 10000).toFixed(0)}% of one core, first backups ${(perBackupMs * 10000 / 3600000).toFixed(1)} h, backups ${(repoKiB / Math.max(1, done) * 10000 / 1048576).toFixed(1)} GiB`);
} finally {
  await server.stop();
  if (!process.env.BENCH_KEEP) rmSync(home, { recursive: true, force: true });
}
