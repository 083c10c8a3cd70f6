// A page of 100 next to a single read (issue figure, not pass/fail): with N databases,
// single-client p50 of `GET /v1/databases?limit=100` (a full page, from the middle of the
// list through a cursor) and of `GET /v1/databases/{id}`, and their ratio (aim: at most 2x).
// Each database is a real PostgreSQL server: N is what the machine's memory and disk allow.
//   BENCH_LIST_DBS (default 2000), BENCH_LIST_SAMPLES (default 300), PGFLEET_BIN
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, closeSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep, pct } from './lib.mjs';

const bin = process.env.PGFLEET_BIN ?? 'build/pgfleet';
const N = Number(process.env.BENCH_LIST_DBS ?? 2000);
const SAMPLES = Number(process.env.BENCH_LIST_SAMPLES ?? 300);


const home = mkdtempSync(join(tmpdir(), 'pgfleet-bench-list-'));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
// one port per database, all below the ephemeral range
const lo = 20000;
const hi = Math.min(32767, lo + N + 200);
const log = openSync(join(home, 'server.log'), 'a');
const token = execFileSync(bin, ['token', 'create', '--home', home], { encoding: 'utf8' }).trim().split('\n').pop();
const server = spawn(bin, ['serve', '--home', home, '--listen', `127.0.0.1:${port}`, '--port-range', `${lo}-${hi}`,
  '--pooler-listen', `127.0.0.1:${await freePort()}`, '--backup-interval', '0', '--workers', '4'], { stdio: ['ignore', log, log] });
closeSync(log);
const H = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
async function api(method, path, body) {
  const r = await fetch(base + path, { method, headers: H, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  if (r.status >= 400) throw new Error(`${method} ${path} -> ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
async function timed(path) {
  const t0 = performance.now();
  const r = await fetch(base + path, { headers: H });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`${path} -> ${r.status}`);
  return performance.now() - t0;
}

try {
  for (let i = 0; i < 200; i++) { try { if ((await fetch(base + '/healthz')).ok) break; } catch {} await sleep(50); }
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench-list', createDatabase: false });
  const ids = [];
  const t0 = Date.now();
  for (let i = 0; i < N; i += 8) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + 8); j++) batch.push(api('POST', '/v1/databases', { projectId: project.id, name: `list-${j}` }));
    for (const r of await Promise.all(batch)) ids.push(r.data.id);
    if (ids.length % 200 === 0) console.log(`list: ${ids.length}/${N} databases created (${Math.round((Date.now() - t0) / 1000)} s)`);
  }
  // measured on a quiet fleet: every database ready (no provisioning in the background)
  for (let ready = 0; ready < ids.length;) {
    ready = 0;
    let cursor_;
    do {
      const page_ = await api('GET', `/v1/databases?limit=100${cursor_ ? `&cursor=${cursor_}` : ''}`);
      ready += page_.data.filter((d) => d.status === 'ready').length;
      cursor_ = page_.pagination.hasMore ? page_.pagination.nextCursor : null;
    } while (cursor_);
    if (ready < ids.length) await sleep(1000);
  }
  console.log(`list: ${ids.length} databases ready (${Math.round((Date.now() - t0) / 1000)} s)`);
  // every page full: from a cursor in the middle of the list
  const cursor = ids[Math.floor(ids.length / 2) - 100] ?? ids[0];
  const one = ids[Math.floor(ids.length / 2)];
  for (let i = 0; i < 20; i++) { await timed(`/v1/databases?limit=100&cursor=${cursor}`); await timed(`/v1/databases/${one}`); }
  const page = [];
  const single = [];
  for (let i = 0; i < SAMPLES; i++) {
    page.push(await timed(`/v1/databases?limit=100&cursor=${cursor}`));
    single.push(await timed(`/v1/databases/${one}`));
  }
  // the server's own CPU per request (utime + stime), steadier than latency on a shared machine
  const cpuMs = () => { const f = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 1000 / 100; };
  const c0 = cpuMs();
  for (let i = 0; i < SAMPLES; i++) await timed(`/v1/databases/${one}`);
  const c1 = cpuMs();
  for (let i = 0; i < SAMPLES; i++) await timed(`/v1/databases?limit=100&cursor=${cursor}`);
  const c2 = cpuMs();
  console.log(`list: server CPU per request: GET /v1/databases/{id} ${((c1 - c0) / SAMPLES).toFixed(2)} ms, page of 100 ${((c2 - c1) / SAMPLES).toFixed(2)} ms; ratio ${((c2 - c1) / Math.max(1, c1 - c0)).toFixed(2)}x (background work included)`);
  const p50p = pct(page, 50);
  const p50s = pct(single, 50);
  console.log(`list: ${ids.length} databases; GET /v1/databases?limit=100 p50 ${p50p.toFixed(2)} ms (p99 ${pct(page, 99).toFixed(2)}), GET /v1/databases/{id} p50 ${p50s.toFixed(2)} ms (p99 ${pct(single, 99).toFixed(2)}); ratio ${(p50p / p50s).toFixed(2)}x per request, ${(p50p / p50s / 100).toFixed(3)}x per item (aim: at most 2x)`);
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(home, { recursive: true, force: true });
}
