// pgfleet benchmarks (issue figures). Run through `make bench`.
// Prints: create-to-ready p50/p99 over 30 sequential creates; GET /v1/databases/{id}
// requests/s with wrk (32 keep-alive connections, 2 threads, 10 s); server RSS with 100
// databases, the PSS of their PostgreSQL servers, and the usage sampler's pass over them.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchServer, sleep, pct } from './lib.mjs';

const N_CREATE = Number(process.env.BENCH_CREATES ?? 30);
const N_DENSE = Number(process.env.BENCH_DENSE ?? 100);

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

const server = await benchServer({ name: 'all', ports: N_DENSE + 40, metrics: true, unlimited: true });
const { home, base, token } = server;
const metrics = () => server.metrics();
function fleetPssKiB(ids) {
  const set = new Set(ids.map((id) => Number(readFileSync(join(home, 'instances', id, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])));
  for (const line of execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' }).trim().split('\n')) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (set.has(ppid)) set.add(pid);
  }
  let pss = 0;
  for (const pid of set) {
    try { pss += Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]); } catch { /* gone */ }
  }
  return { pss, procs: set.size };
}
const api = (method, path, body) => server.api(method, path, body);
const waitReady = (id) => server.waitReady(id, 5);

try {
  await server.start();
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench', createDatabase: false });
  const ids = [];

  // 1. create-to-ready, sequential
  const times = [];
  for (let i = 0; i < N_CREATE; i++) {
    const t0 = performance.now();
    const { data } = await api('POST', '/v1/databases', { projectId: project.id, name: `bench-${i}` });
    await waitReady(data.id);
    times.push(performance.now() - t0);
    ids.push(data.id);
  }
  console.log(`create-to-ready over ${N_CREATE} sequential creates: p50 ${pct(times, 50).toFixed(0)} ms, p99 ${pct(times, 99).toFixed(0)} ms, max ${Math.max(...times).toFixed(0)} ms`);

  // 2. GET throughput with wrk, once the first full backup of each new database is done
  // (30 pgBackRest runs would otherwise share the 2 cores with the API)
  const tb = performance.now();
  for (const id of ids) {
    for (;;) {
      const { data } = await api('GET', `/v1/databases/${id}/backups`);
      if (data.length && data.every((b) => b.status !== 'running')) break;
      await sleep(200);
    }
  }
  console.log(`(waited ${((performance.now() - tb) / 1000).toFixed(1)} s for the first backups of the new databases)`);
  try {
    const out = execFileSync('wrk', ['-t2', '-c32', '-d10s', '--latency', '-H', `Authorization: Bearer ${token}`, `${base}/v1/databases/${ids[0]}`], { encoding: 'utf8' });
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
    const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1];
    const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1];
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0';
    console.log(`GET /v1/databases/{id} (wrk -t2 -c32 -d10s): ${rps} requests/s, latency p50 ${p50}, p99 ${p99}, non-2xx ${non2xx}`);
  } catch (err) {
    console.log(`wrk unavailable or failed: ${err.message}`);
  }

  // 3. RSS with N_DENSE databases
  while (ids.length < N_DENSE) {
    const batch = [];
    for (let i = 0; i < 10 && ids.length + batch.length < N_DENSE; i++)
      batch.push(api('POST', '/v1/databases', { projectId: project.id }).then(({ data }) => data.id));
    const made = await Promise.all(batch);
    await Promise.all(made.map(waitReady));
    ids.push(...made);
  }
  await sleep(1000);
  console.log(`server RSS with ${ids.length} ready databases: ${(rssKiB(server.pid) / 1024).toFixed(1)} MiB`);
  const fleet = fleetPssKiB(ids);
  console.log(`the ${ids.length} PostgreSQL servers (${fleet.procs} processes): PSS ${(fleet.pss / 1024).toFixed(0)} MiB, ${(fleet.pss / 1024 / ids.length).toFixed(1)} MiB per database`);
  // the usage sampler's pass over every database (every 60 s, the default: up to two
  // minutes until a pass starts after the last database became ready)
  let m;
  for (let i = 0; i < 260; i++) {
    m = await metrics();
    if (m.get('pgfleet_usage_pass_databases') >= ids.length) break;
    await sleep(500);
  }
  const t0 = performance.now();
  await metrics();
  console.log(`usage sampler pass over ${m.get('pgfleet_usage_pass_databases')} databases: ${(m.get('pgfleet_usage_pass_seconds') * 1000).toFixed(0)} ms; GET /metrics: ${(performance.now() - t0).toFixed(0)} ms`);
} finally {
  await server.close();
}
