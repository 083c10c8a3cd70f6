// pgfleet benchmark: the pooled endpoint (PgBouncer) against the direct one (issue 4).
// Prints pgbench select-only TPS through each endpoint and their ratio (after
// `pgbench -i -s 10`; `pgbench -S -c 16 -j 2 -T 10` by default), and new-connection
// latency p50/p99 through each: connect (TLS + SCRAM) + SELECT 1 + disconnect with the
// `pg` client, sequentially. Run through `make bench`.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, sleep, pct } from './lib.mjs';

const root = resolve(import.meta.dirname, '..');
const pg = createRequire(join(root, 'tests/e2e/package.json'))('pg');
const bin = process.env.PGFLEET_BIN ?? join(root, 'build/pgfleet');
const CLIENTS = Number(process.env.BENCH_PGBENCH_CLIENTS ?? 16);
const SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
const SCALE = Number(process.env.BENCH_PGBENCH_SCALE ?? 10);
const N_CONNECT = Number(process.env.BENCH_CONNECTS ?? 200);

const home = mkdtempSync(join(tmpdir(), 'pgfleet-bench-pooler-'));
const port = await freePort();
const poolerPort = await freePort();
const lo = 20000 + Math.floor(Math.random() * 200) * 50; // below the ephemeral range (pgfleet refuses an overlap)
const base = `http://127.0.0.1:${port}`;
const log = openSync(join(home, 'server.log'), 'a');
const token = execFileSync(bin, ['token', 'create', '--home', home], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop();
const server = spawn(bin, ['serve', '--home', home, '--listen', `127.0.0.1:${port}`, '--port-range', `${lo}-${lo + 9}`,
  '--pooler-listen', `127.0.0.1:${poolerPort}`], { stdio: ['ignore', log, log] });
const H = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
async function api(method, path, body) {
  const r = await fetch(base + path, { method, headers: H, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  if (r.status >= 400) throw new Error(`${method} ${path} -> ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function pgbench(args, cs) {
  return execFileSync('pgbench', [...args, cs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
}

async function connectLatency(cs) {
  const times = [];
  for (let i = 0; i < N_CONNECT; i++) {
    const t0 = performance.now();
    const c = new pg.Client({ connectionString: cs });
    await c.connect();
    await c.query('SELECT 1');
    await c.end();
    times.push(performance.now() - t0);
  }
  return times;
}

try {
  for (let i = 0; i < 600; i++) { try { if ((await fetch(base + '/healthz')).ok) break; } catch {} await sleep(50); }
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench-pooler' });
  const db = project.database;
  for (;;) {
    const { data } = await api('GET', `/v1/databases/${db.id}`);
    if (data.status === 'ready') break;
    await sleep(20);
  }
  const { direct, pooled } = db.connections[0].endpoints;
  execFileSync('pgbench', ['-i', '-q', '-s', String(SCALE), direct.connectionString], { stdio: 'ignore' });
  const tps = {};
  for (const [name, ep] of [['direct', direct], ['pooled', pooled]]) {
    pgbench(['-S', '-n', '-c', '2', '-j', '2', '-T', '2'], ep.connectionString); // warm up
    const out = pgbench(['-S', '-n', '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS)], ep.connectionString);
    tps[name] = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]);
    console.log(`pgbench -S -c ${CLIENTS} -j 2 -T ${SECONDS} (scale ${SCALE}) ${name}: ${tps[name].toFixed(0)} tps`);
  }
  console.log(`pooled/direct select-only TPS ratio at ${CLIENTS} clients: ${(tps.pooled / tps.direct).toFixed(2)}`);
  // libpq's sslmode=require (encrypt, do not verify) for the pg client
  const compat = (cs) => cs.replace(/\?.*$/, '?sslmode=require&uselibpqcompat=true');
  for (const [name, ep] of [['direct', direct], ['pooled', pooled]]) {
    await connectLatency(compat(ep.connectionString)).then(() => {}); // warm up (server pool, caches)
    const t = await connectLatency(compat(ep.connectionString));
    console.log(`new connection (TLS + SCRAM + SELECT 1 + close) ${name}, ${N_CONNECT} sequential: p50 ${pct(t, 50).toFixed(1)} ms, p99 ${pct(t, 99).toFixed(1)} ms`);
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
  rmSync(home, { recursive: true, force: true });
}
