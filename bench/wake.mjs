// pgfleet benchmark: waking a sleeping database (issue 11). With --suspend-after 1, waits
// until the database sleeps (no postmaster, the asleep mark), then times connect (TLS + SCRAM)
// + SELECT 1 with the `pg` client through the direct endpoint, BENCH_WAKES times (default
// 30), then through the pooled one; prints p50/p99 of each beside the server's own start time
// in the same run (serve's log: "awake: the server started in N ms"). Run through `make bench`.
import { execFileSync } from 'node:child_process';
import { readFileSync, existsSync, readdirSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { benchServer, root, sleep, pct } from './lib.mjs';

const pg = createRequire(join(root, 'tests/e2e/package.json'))('pg');
const N = Number(process.env.BENCH_WAKES ?? 30);

const server = await benchServer({ name: 'wake', ports: 10, flags: ['--suspend-after', '1', '--backup-interval', '0', '--usage-interval', '0'] });
const { home, logPath } = server;
const api = (method, path, body) => server.api(method, path, body);

function postmasterRuns(id) {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`/instances/${id}/data`)) return true;
    } catch { /* gone */ }
  }
  return false;
}
// a database's server is an instance of a neutral id: run/<database id> links to its socket
// directory run/<instance id>
const instanceOf = (id) => { try { return readlinkSync(join(home, 'run', id)); } catch { return id; } };
async function waitAsleep(dbId) {
  const id = instanceOf(dbId);
  for (let i = 0; i < 1200; i++) {
    if (existsSync(join(home, 'instances', id, 'asleep')) && !postmasterRuns(id)) return;
    await sleep(25);
  }
  throw new Error(`${id} does not sleep`);
}
const compat = (cs) => cs.replace(/\?.*$/, '?sslmode=require&uselibpqcompat=true');
async function wakeOnce(cs) {
  const t0 = performance.now();
  const c = new pg.Client({ connectionString: cs, connectionTimeoutMillis: 30000 });
  await c.connect();
  await c.query('SELECT 1');
  const ms = performance.now() - t0;
  await c.end();
  return ms;
}
const starts = () => [...readFileSync(logPath, 'utf8').matchAll(/awake: the server started in (\d+) ms/g)].map((m) => Number(m[1]));

try {
  await server.start();
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench-wake' });
  const db = project.database;
  for (;;) {
    const { data } = await api('GET', `/v1/databases/${db.id}`);
    if (data.status === 'ready') break;
    await sleep(20);
  }
  const { direct, pooled } = db.connections[0].endpoints;
  const res = {};
  for (const [name, ep] of [['direct', direct], ['pooled', pooled]]) {
    const before = starts().length;
    const t = [];
    for (let i = 0; i < N; i++) {
      await waitAsleep(db.id);
      t.push(await wakeOnce(compat(ep.connectionString)));
    }
    res[name] = { t, start: starts().slice(before) };
  }
  for (const [name, r] of Object.entries(res)) {
    console.log(`wake ${name} (connect + TLS + SCRAM + SELECT 1 on a sleeping database), ${N} wakes: p50 ${pct(r.t, 50).toFixed(0)} ms, p99 ${pct(r.t, 99).toFixed(0)} ms; server start alone: p50 ${pct(r.start, 50)} ms, p99 ${pct(r.start, 99)} ms`);
  }
} finally {
  await server.close();
}
