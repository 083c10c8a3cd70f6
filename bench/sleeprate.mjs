// Sleep rate: BENCH_SLEEP_DBS databases (default 24) are woken at once, left idle, and timed
// until every one sleeps again (--suspend-after 2): the rounds' wall time from the last
// client's end to all asleep, and databases put to sleep per second. BENCH_SLEEP_ROUNDS
// rounds (default 3); the median is printed. PGFLEET_BIN picks the binary (before/after).
import { execFile } from 'node:child_process';
import { benchServer, sleep } from './lib.mjs';

const N = Number(process.env.BENCH_SLEEP_DBS ?? 24);
const ROUNDS = Number(process.env.BENCH_SLEEP_ROUNDS ?? 3);
const server = await benchServer({ name: 'sleeprate', ports: N + 10, metrics: true, unlimited: true, flags: ['--suspend-after', '2', '--spares', '1'] });
const psql = (cs) => new Promise((resolve) => execFile('psql', [cs, '-XAtqc', 'SELECT 1'], { timeout: 60000 }, (err) => resolve(!err)));
const asleepCount = async () => (await server.metrics()).get('pgfleet_databases_asleep') ?? 0;

try {
  await server.start();
  const { data: project } = await server.api('POST', '/v1/projects', { name: 'bench-sleeprate', createDatabase: false });
  const dbs = [];
  for (let i = 0; i < N; i += 4) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + 4); j++) batch.push(server.api('POST', '/v1/databases', { projectId: project.id, name: `s-${j}` }));
    for (const r of await Promise.all(batch)) dbs.push(r.data);
  }
  for (const d of dbs) await server.waitReady(d.id);
  const cs = dbs.map((d) => d.connections[0].endpoints.direct.connectionString);
  // the first backups run first (a queued backup keeps its database awake)
  for (let k = 0; k < 600 && (await asleepCount()) < N; k++) await sleep(1000);
  const times = [];
  for (let round = 0; round < ROUNDS; round++) {
    const ok = await Promise.all(cs.map(psql));
    if (ok.some((x) => !x)) throw new Error('a wake failed');
    const t0 = Date.now();
    let n = 0;
    for (let k = 0; k < 6000 && (n = await asleepCount()) < N; k++) await sleep(50);
    if (n < N) throw new Error(`only ${n} of ${N} asleep`);
    const s = (Date.now() - t0) / 1000;
    times.push(s);
    console.log(`sleeprate: round ${round + 1}: ${N} databases asleep ${s.toFixed(1)} s after their clients ended (${(N / s).toFixed(2)} per s; 2 s of it is --suspend-after)`);
  }
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)];
  console.log(`sleeprate: median of ${ROUNDS} rounds: ${med.toFixed(1)} s for ${N} databases, ${(N / med).toFixed(2)} put to sleep per s`);
} finally {
  await server.close();
}
