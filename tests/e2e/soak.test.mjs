// Soak: 50 concurrent clients for 2 minutes doing create / get / list / connection create /
// rotate / delete while scheduled backups run (a short --backup-interval). No request may
// answer 5xx, and every state the server acknowledged holds at the end: a database created
// and not deleted exists (ready), one deleted answers 404, a connection created and not
// deleted exists and its last acknowledged password logs in, one deleted answers 404.
// E2E_SOAK_SECONDS, E2E_SOAK_CLIENTS, E2E_SOAK_LIVE (databases alive at once) shorten it, or
// lengthen it for the 10-minute figure (docs/operations.md; PGFLEET_BIN=build/pgfleet for the
// release build): it prints requests by status, p50/p99 and the server's RSS at start and end.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, uniq } from './lib/api.mjs';
import { sql } from './lib/pg.mjs';
import { freePort, sleep } from './lib/procs.mjs';
import { sleepProbes } from './lib/sleep.mjs';

const SECONDS = Number(process.env.E2E_SOAK_SECONDS ?? 120);
const CLIENTS = Number(process.env.E2E_SOAK_CLIENTS ?? 50);
const LIVE = Number(process.env.E2E_SOAK_LIVE ?? 12);
// 50 clients share one address and one token here: as behind a reverse proxy, the
// per-address connection cap and the per-credential rate limit are lifted (docs/operations.md)
const metricsPort = await freePort();
const ctx = useServer('soak', {
  extraArgs: ['--backup-interval', '5', '--spares', '4', '--http-max-per-address', '0', '--rate-limit', '0',
    '--metrics-listen', `127.0.0.1:${metricsPort}`],
});

const dbs = new Map(); // id -> { state: 'created'|'ready'|'deleted', conns: Map(id -> {cs, deleted}) }
const stats = { requests: 0, byStatus: new Map(), errors5xx: [], thrown: [], ms: [] };
const statusKiB = (field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${ctx.server.pid}/status`, 'utf8'))[1]);
const rssMiB = () => statusKiB('VmRSS') / 1024;
// RSS in its parts: anonymous (the heap, thread stacks, SQLite's page caches), file-backed
const rssParts = () => `anon ${(statusKiB('RssAnon') / 1024).toFixed(1)}, file ${(statusKiB('RssFile') / 1024).toFixed(1)}`;
// what the heap holds, from /metrics: live blocks, freed ones malloc keeps, SQLite's caches
// (the heap gauges are absent from a sanitizer build: NaN there)
const { metrics } = sleepProbes(ctx, metricsPort);
async function heapMiB() {
  const m = await metrics();
  const v = (name) => (m.get(name) ?? NaN) / 1048576;
  return { inUse: v('pgfleet_heap_bytes{state="in_use"}'), free: v('pgfleet_heap_bytes{state="free"}'), sqlite: v('pgfleet_catalog_memory_bytes') };
}
const heapText = (h) => `heap in use ${h.inUse.toFixed(1)}, free ${h.free.toFixed(1)}, SQLite ${h.sqlite.toFixed(1)} MiB`;
const pct = (xs, q) => { const v = [...xs].sort((a, b) => a - b); return v.length ? v[Math.min(v.length - 1, Math.ceil((q / 100) * v.length) - 1)] : NaN; };
let project;
let live = 0;

async function req(method, template, init = {}) {
  let r;
  const t0 = performance.now();
  try {
    r = await call(ctx.c, method, template, init);
  } catch (e) {
    stats.thrown.push(`${method} ${template}: ${e.message.split('\n')[0]}`);
    return null;
  }
  stats.requests++;
  stats.ms.push(performance.now() - t0);
  stats.byStatus.set(r.status, (stats.byStatus.get(r.status) || 0) + 1);
  if (r.status >= 500) stats.errors5xx.push(`${method} ${template} -> ${r.status} ${JSON.stringify(r.body?.error ?? r.body).slice(0, 300)}`);
  return r;
}

const pick = (arr) => arr[Math.floor(Math.random() * arr.length)];
const readyIds = () => [...dbs].filter(([, d]) => d.state === 'ready').map(([id]) => id);
const p = (databaseId) => ({ params: { path: { databaseId } } });

async function createDb() {
  live++;
  const r = await req('POST', '/v1/databases', { body: { projectId: project.id, name: uniq('soak') } });
  if (r?.status !== 201) {
    live--;
    return;
  }
  const d = r.body.data;
  const conns = new Map([[d.connections[0].id, { cs: d.connections[0].endpoints.direct.connectionString, deleted: false }]]);
  dbs.set(d.id, { state: 'created', conns });
}

async function pollDb(id) {
  const r = await req('GET', '/v1/databases/{databaseId}', p(id));
  const d = dbs.get(id);
  if (r?.status === 200 && r.body.data.status === 'ready' && d.state === 'created') d.state = 'ready';
}

async function connCreate(id) {
  const d = dbs.get(id);
  const r = await req('POST', '/v1/databases/{databaseId}/connections', { ...p(id), body: { name: uniq('c') } });
  if (r?.status === 200 || r?.status === 201) {
    d.conns.set(r.body.data.id, { cs: r.body.data.endpoints.direct.connectionString, deleted: false });
  }
}

async function rotate(id) {
  const d = dbs.get(id);
  const live_ = [...d.conns].filter(([, c]) => !c.deleted && !c.busy);
  if (!live_.length) return;
  const [cid, c] = pick(live_);
  c.busy = true; // one change of a credential at a time: the last acknowledged one is known
  const r = await req('POST', '/v1/connections/{id}/rotate', { params: { path: { id: cid } } });
  if (r?.status === 200) c.cs = r.body.data.endpoints.direct.connectionString;
  else if (r?.status >= 500) c.unknown = true; // not acknowledged, yet its op may still apply
  c.busy = false;
}

async function connDelete(id) {
  const d = dbs.get(id);
  const live_ = [...d.conns].filter(([, c]) => !c.deleted && !c.busy);
  if (live_.length < 2) return; // keep one to log in with
  const [cid, c] = pick(live_);
  c.busy = true;
  const r = await req('DELETE', '/v1/connections/{id}', { params: { path: { id: cid } } });
  if (r?.status === 204) c.deleted = true;
  c.busy = false;
}

async function deleteDb(id) {
  const d = dbs.get(id);
  d.state = 'deleting';
  const r = await req('DELETE', '/v1/databases/{databaseId}', p(id));
  if (r?.status === 204) {
    d.state = 'deleted';
    live--;
  } else if (r?.status >= 500) {
    d.state = 'unknown'; // not acknowledged, yet its op may still complete: not checked
    live--;
  } else {
    d.state = 'ready'; // refused: still ours to check
  }
}

async function worker(end) {
  while (Date.now() < end) {
    const ready = readyIds();
    const roll = Math.random();
    if (live < LIVE && roll < 0.08) await createDb();
    else if (roll < 0.3) await req('GET', '/v1/databases', { params: { query: { limit: 100 } } });
    else if (roll < 0.4) await req('GET', '/v1/connections', { params: { query: { limit: 100 } } });
    else if (roll < 0.55) {
      const pending = [...dbs].filter(([, d]) => d.state === 'created').map(([id]) => id);
      if (pending.length) await pollDb(pick(pending));
      else if (ready.length) await req('GET', '/v1/databases/{databaseId}', p(pick(ready)));
    } else if (!ready.length) await sleep(50);
    else if (roll < 0.7) await connCreate(pick(ready));
    else if (roll < 0.85) await rotate(pick(ready));
    else if (roll < 0.93) await connDelete(pick(ready));
    else if (ready.length > LIVE / 2) await deleteDb(pick(ready));
    else await req('GET', '/v1/databases/{databaseId}/connections', p(pick(ready)));
  }
}

ctx.it('setup: a project', async () => {
  project = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('soak'), createDatabase: false } }), 201).data;
});

ctx.it(`${CLIENTS} clients for ${SECONDS} s: create / get / list / connection create / rotate / delete, 0 5xx`, async () => {
  const end = Date.now() + SECONDS * 1000;
  const rss0 = rssMiB();
  const parts0 = rssParts();
  const heap0 = await heapMiB();
  // RSS at each tenth of the run: flat means no growth after the warm-up (the first tenth)
  const rssAt = [];
  const heapAt = [];
  const sampler = setInterval(() => {
    try {
      rssAt.push(rssMiB());
    } catch { /* the server is gone: its requests fail the test */ }
    heapMiB().then((h) => heapAt.push(h.inUse), () => {});
  }, SECONDS * 100);
  await Promise.all(Array.from({ length: CLIENTS }, () => worker(end)));
  clearInterval(sampler);
  const summary = [...stats.byStatus].sort().map(([s, n]) => `${s}:${n}`).join(' ');
  console.log(`# soak: ${CLIENTS} clients, ${SECONDS} s: ${stats.requests} requests (${summary}), ${stats.errors5xx.length} 5xx, p50 ${pct(stats.ms, 50).toFixed(1)} ms, ` +
    `p99 ${pct(stats.ms, 99).toFixed(1)} ms; server RSS ${rss0.toFixed(1)} MiB at start (${parts0}; ${heapText(heap0)}), ${rssMiB().toFixed(1)} MiB at the end (${rssParts()}; ${heapText(await heapMiB())}; ` +
    `each tenth: RSS ${rssAt.map((v) => v.toFixed(1)).join(' ')}, heap in use ${heapAt.map((v) => v.toFixed(1)).join(' ')}); ${dbs.size} databases created`);
  assert.deepEqual(stats.thrown, [], 'requests that failed the contract or the transport');
  assert.deepEqual(stats.errors5xx, [], '5xx answers');
  assert.ok(dbs.size >= 5, `at least 5 databases created (${dbs.size})`);
}, { timeout: (SECONDS + 120) * 1000 });

ctx.it('every acknowledged state holds: databases, connections, last passwords', async () => {
  const bad = [];
  for (const [id, d] of dbs) {
    if (d.state === 'unknown') continue;
    const r = await call(ctx.c, 'GET', '/v1/databases/{databaseId}', p(id));
    if (d.state === 'deleted') {
      if (r.status !== 404) bad.push(`${id}: deleted (204) but GET answers ${r.status}`);
      continue;
    }
    if (r.status !== 200) {
      bad.push(`${id}: created (201) but GET answers ${r.status}`);
      continue;
    }
    // a database created near the end may still be provisioning: wait for it
    for (let i = 0; i < 150 && (await call(ctx.c, 'GET', '/v1/databases/{databaseId}', p(id))).body.data.status !== 'ready'; i++) await sleep(200);
    for (const [cid, c] of d.conns) {
      const g = await call(ctx.c, 'GET', '/v1/connections/{id}', { params: { path: { id: cid } } });
      if (c.deleted) {
        if (g.status !== 404) bad.push(`${cid}: deleted (204) but GET answers ${g.status}`);
        continue;
      }
      if (g.status !== 200) {
        bad.push(`${cid}: created but GET answers ${g.status}`);
        continue;
      }
      if (c.unknown) continue; // a rotate answered 5xx: which password holds is not known
      try {
        await sql(c.cs, 'SELECT 1');
      } catch (e) {
        bad.push(`${cid} of ${id}: the last acknowledged password does not log in: ${e.message}`);
      }
    }
  }
  assert.deepEqual(bad, [], 'acknowledged states that do not hold');
}, { timeout: 600000 });

ctx.itShutsDownCleanly();
