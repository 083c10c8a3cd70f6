// Operator metrics: Prometheus text on --metrics-listen only, following what the fleet does.
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { call, raw, expectStatus, expectError, waitReady } from './lib/api.mjs';
import { freePort, until } from './lib/procs.mjs';
import { BIN, cli } from './lib/server.mjs';

const metricsPort = await freePort();
const ctx = useServer('metrics', { extraArgs: ['--metrics-listen', `127.0.0.1:${metricsPort}`] });
const S = {};

// Fetches /metrics, checks the exposition format, returns a map "name{labels}" -> value.
async function scrape() {
  const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await r.text();
  const typed = new Set();
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const t = /^# TYPE ([a-z_]+) (counter|gauge|histogram)$/.exec(line);
    if (t) { typed.add(t[1]); continue; }
    if (/^# HELP [a-z_]+ .+$/.test(line)) continue;
    const s = /^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.]+(e[+-]?[0-9]+)?)$/.exec(line);
    assert.ok(s, `not a Prometheus sample line: ${line}`);
    const family = s[1].replace(/_(bucket|sum|count)$/, '');
    assert.ok(typed.has(s[1]) || typed.has(family), `no TYPE before ${line}`);
    m.set(s[1] + (s[2] ?? ''), Number(s[4]));
  }
  return m;
}

ctx.it('GET /metrics on the metrics listener; not on the API', async () => {
  const m = await scrape();
  assert.equal(m.get('pgfleet_build_info{version="0.1.0"}'), 1);
  assert.equal(m.get('pgfleet_databases{status="ready"}'), 0);
  assert.equal(m.get('pgfleet_pooler_up'), 1);
  assert.ok(m.get('pgfleet_resident_memory_bytes') > 1e6);
  // the resident memory's parts: SQLite holds some of it; the live heap is below the RSS (a
  // sanitizer build's malloc is AddressSanitizer's, which glibc's mallinfo2 cannot see: absent)
  assert.ok(m.get('pgfleet_catalog_memory_bytes') > 1e4);
  if (/-san$/.test(BIN)) {
    assert.equal(m.has('pgfleet_heap_bytes{state="in_use"}'), false);
  } else {
    assert.ok(m.get('pgfleet_heap_bytes{state="in_use"}') > 1e5);
    assert.ok(m.get('pgfleet_heap_bytes{state="in_use"}') < m.get('pgfleet_resident_memory_bytes'));
    assert.ok(m.get('pgfleet_heap_bytes{state="free"}') >= 0);
  }
  assert.ok(Math.abs(m.get('pgfleet_start_time_seconds') - Date.now() / 1000) < 600);
  expectError(await raw(ctx.server, 'GET', '/metrics'), 404);
});

ctx.it('databases, servers, ops and backups as the fleet changes', async () => {
  const before = await scrape();
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: 'metrics' } }), 201).data;
  S.db = p.database.id;
  S.conn = p.database.connections[0].id;
  await waitReady(ctx.c, S.db);
  let m = await scrape();
  assert.equal(m.get('pgfleet_databases{status="ready"}'), 1);
  assert.equal(m.get('pgfleet_servers{state="up"}'), 1);
  assert.equal(m.get('pgfleet_servers{state="down"}'), 0);
  // `ready` comes a moment before the provision op ends
  const provisioned = 'pgfleet_op_attempts_total{kind="db_provision",outcome="done"}';
  assert.ok(await until(async () => (m = await scrape()).get(provisioned) === before.get(provisioned) + 1, { timeoutMs: 5000, intervalMs: 50 }),
    `${provisioned} ${m.get(provisioned)}, want ${before.get(provisioned) + 1}`);
  assert.ok(m.get('pgfleet_op_seconds_total{kind="db_provision"}') > 0);

  // the first full backup: its end shows up per database
  const key = `pgfleet_database_last_backup_time_seconds{database="${S.db}"}`;
  assert.ok(await until(async () => (m = await scrape()).get(key) > 0, { timeoutMs: 60000, intervalMs: 300 }), 'no backup time');
  assert.ok(Math.abs(m.get(key) - Date.now() / 1000) < 120, `last backup ${m.get(key)}`);
  // the backup op still expires old backups after the backup itself completed
  const queued = 'pgfleet_ops_queued{kind="db_backup",state="running"}';
  assert.ok(await until(async () => (await scrape()).get(queued) === 0, { timeoutMs: 30000, intervalMs: 100 }), `${queued} stays above 0`);

  // a rotate is one conn_sync op
  const synced = 'pgfleet_op_attempts_total{kind="conn_sync",outcome="done"}';
  const n = m.get(synced);
  expectStatus(await call(ctx.c, 'POST', '/v1/connections/{id}/rotate', { params: { path: { id: S.conn } } }), 200);
  assert.equal((await scrape()).get(synced), n + 1);
});

ctx.it('API requests by status class and latency', async () => {
  const a = await scrape();
  expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: S.db } } }), 200);
  expectError(await call(ctx.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: 'db_nope' } } }), 404);
  const b = await scrape();
  assert.equal(b.get('pgfleet_http_requests_total{code="2xx"}'), a.get('pgfleet_http_requests_total{code="2xx"}') + 1);
  assert.equal(b.get('pgfleet_http_requests_total{code="4xx"}'), a.get('pgfleet_http_requests_total{code="4xx"}') + 1);
  const count = b.get('pgfleet_http_request_duration_seconds_count');
  assert.equal(count, a.get('pgfleet_http_request_duration_seconds_count') + 2);
  assert.equal(b.get('pgfleet_http_request_duration_seconds_bucket{le="+Inf"}'), count);
  // cumulative buckets never go down
  let prev = 0;
  for (const le of ['0.001', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '5', '+Inf']) {
    const v = b.get(`pgfleet_http_request_duration_seconds_bucket{le="${le}"}`);
    assert.ok(v >= prev, `bucket ${le}: ${v} < ${prev}`);
    prev = v;
  }
});

ctx.it('pgfleet status, beside the running server, reads the same fleet from the catalog', async () => {
  const m = await scrape();
  const stdout = await cli(['status', '--home', ctx.server.home], { full: true });
  const lines = stdout.split('\n');
  assert.match(lines[0], new RegExp(`^databases: 0 provisioning, ${m.get('pgfleet_databases{status="ready"}')} ready, 0 recovering, 0 failure, 0 deleting$`));
  assert.match(lines[1], /^ops: \d+ pending, \d+ running$/);
  assert.match(lines[2], /^spares: \d+$/);
  assert.match(lines[3], /^servers: \d+ awake, \d+ asleep$/);
  const row = lines.find((l) => l.startsWith(S.db));
  assert.ok(row, `no line for ${S.db}: ${stdout}`);
  const [, status, state, port, last, instance, name] = row.split(/\s+/);
  assert.match(instance, /^in_[a-z0-9]+$/, 'the database is served by an instance of its own id');
  assert.equal(status, 'ready');
  assert.equal(state, 'awake');
  assert.ok(Number(port) >= ctx.server.portLo && Number(port) <= ctx.server.portHi, row);
  const t = m.get(`pgfleet_database_last_backup_time_seconds{database="${S.db}"}`);
  assert.ok(Math.abs(Date.parse(last) / 1000 - t) <= 1, `${last} vs ${t}`);
  assert.ok(name.length > 0);
});

ctx.it('list items: a page keeps each item\'s text, the next copies it, a changed item is made again', async () => {
  // a ready database: one still provisioning changes (and is made again) when it gets ready
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: 'metrics-list' } }), 201).data;
  await waitReady(ctx.c, p.database.id);
  const page = async () => expectStatus(await call(ctx.c, 'GET', '/v1/databases', {}), 200).data;
  const delta = (m1, m0, k) => (m1.get(k) ?? NaN) - (m0.get(k) ?? 0);
  const KEPT = 'pgfleet_list_items_total{source="kept"}', MADE = 'pgfleet_list_items_total{source="made"}';
  const m0 = await scrape();
  const items = await page();
  assert.ok(items.length >= 1, 'a database to list');
  const m1 = await scrape();
  assert.equal(delta(m1, m0, KEPT) + delta(m1, m0, MADE), items.length, 'one lookup an item');
  assert.ok(m1.get('pgfleet_list_items_kept') >= items.length);
  assert.ok(m1.get('pgfleet_list_items_kept_bytes') > 0);
  await page();
  const m2 = await scrape();
  assert.equal(delta(m2, m1, KEPT), items.length, 'the second page copies every item');
  assert.equal(delta(m2, m1, MADE), 0);
  assert.equal(m2.get('pgfleet_list_items_kept'), m1.get('pgfleet_list_items_kept'), 'and keeps no more');
  const [first] = items;
  expectStatus(await call(ctx.c, 'PATCH', '/v1/databases/{databaseId}', { params: { path: { databaseId: first.id } }, body: { name: 'kept-renamed' } }), 200);
  const again = await page();
  assert.equal(again.find((d) => d.id === first.id).name, 'kept-renamed');
  const m3 = await scrape();
  assert.equal(delta(m3, m2, MADE), 1, 'the renamed item is made again');
  assert.equal(delta(m3, m2, KEPT), items.length - 1);
  assert.equal(m3.get('pgfleet_list_items_kept'), m2.get('pgfleet_list_items_kept'), 'its text replaced, not added');
  // a deleted database's text goes with it
  const extra = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: p.id, name: 'kept-deleted' } }), 201).data;
  await waitReady(ctx.c, extra.id);
  assert.ok((await page()).some((d) => d.id === extra.id));
  const m4 = await scrape();
  expectStatus(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: extra.id } } }), 204);
  assert.equal((await scrape()).get('pgfleet_list_items_kept'), m4.get('pgfleet_list_items_kept') - 1);
});

ctx.itShutsDownCleanly();
