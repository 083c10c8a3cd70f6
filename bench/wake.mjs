// pgfleet benchmark: waking a sleeping database (issue 11). With --suspend-after 1, waits
// until the database sleeps (no postmaster, the asleep mark), then times connect (TLS + SCRAM)
// + SELECT 1 with the `pg` client through the direct endpoint, BENCH_WAKES times (default
// 30), then through the pooled one; prints p50/p99 of each beside the server's own start time
// in the same run (serve's log: "awake: the server started in N ms"). Run through `make bench`.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, readFileSync, existsSync, readdirSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, sleep, pct } from './lib.mjs';

const root = resolve(import.meta.dirname, '..');
const pg = createRequire(join(root, 'tests/e2e/package.json'))('pg');
const bin = process.env.PGFLEET_BIN ?? join(root, 'build/pgfleet');
const N = Number(process.env.BENCH_WAKES ?? 30);

const home = mkdtempSync(join(tmpdir(), 'pgfleet-bench-wake-'));
const port = await freePort();
const poolerPort = await freePort();
// one database, in 50 ports above the default range (20000-29999, where other runs' databases
// are) and below the kernel's ephemeral ports (32768)
const lo = 30000 + Math.floor(Math.random() * 54) * 50;
const base = `http://127.0.0.1:${port}`;
const logPath = join(home, 'server.log');
const log = openSync(logPath, 'a');
const token = execFileSync(bin, ['token', 'create', '--home', home], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop();
const server = spawn(bin, ['serve', '--home', home, '--listen', `127.0.0.1:${port}`, '--port-range', `${lo}-${lo + 49}`,
  '--pooler-listen', `127.0.0.1:${poolerPort}`, '--suspend-after', '1', '--backup-interval', '0', '--usage-interval', '0'],
{ stdio: ['ignore', log, log] });
const H = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
async function api(method, path, body) {
  const r = await fetch(base + path, { method, headers: H, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  if (r.status >= 400) throw new Error(`${method} ${path} -> ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

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
  for (let i = 0; i < 600; i++) { try { if ((await fetch(base + '/healthz')).ok) break; } catch {} await sleep(50); }
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
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
  rmSync(home, { recursive: true, force: true });
}
