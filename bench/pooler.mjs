// pgfleet benchmark: the pooled endpoint (PgBouncer) against the direct one (issue 4).
// Prints pgbench select-only TPS through each endpoint and their ratio (after
// `pgbench -i -s 10`; `pgbench -S -c 16 -j 2 -T 10` by default), and new-connection
// latency p50/p99 through each: connect (TLS + SCRAM) + SELECT 1 + disconnect with the
// `pg` client, sequentially. Run through `make bench`.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { benchServer, root, sleep, pct } from './lib.mjs';

const pg = createRequire(join(root, 'tests/e2e/package.json'))('pg');
const CLIENTS = Number(process.env.BENCH_PGBENCH_CLIENTS ?? 16);
const SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
const SCALE = Number(process.env.BENCH_PGBENCH_SCALE ?? 10);
const N_CONNECT = Number(process.env.BENCH_CONNECTS ?? 200);

const server = await benchServer({ name: 'pooler', ports: 10 });
const api = (method, path, body) => server.api(method, path, body);

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
  await server.start();
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
  await server.close();
}
