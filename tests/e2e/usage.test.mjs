// Usage metrics: GET /v1/databases/{databaseId}/usage through the SDK, with the usage sampler
// running every second. Operations are the transactions the database's server ran;
// storage is its size in GiB at the last sample of the period.
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, expectError, waitReady, unknownLike } from './lib/api.mjs';
import { connect, closeQuietly, sql } from './lib/pg.mjs';
import { until } from './lib/procs.mjs';

const ctx = useServer('usage', { extraArgs: ['--usage-interval', '1'] });
const S = {};
const GiB = 2 ** 30;

const usage = (databaseId, query) =>
  call(ctx.c, 'GET', '/v1/databases/{databaseId}/usage', { params: { path: { databaseId }, query } });
const used = async (databaseId, query) => expectStatus(await usage(databaseId, query), 200).metrics;

async function backupsIdle(databaseId) {
  const ok = await until(async () => {
    const r = expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId } } }), 200);
    return r.data.length > 0 && r.data.every((b) => b.status !== 'running');
  }, { timeoutMs: 60000, intervalMs: 200 });
  assert.ok(ok, 'the first backup did not finish');
}

ctx.it('setup: a ready database, sampled', async () => {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: 'usage' } }), 201).data;
  S.project = p.id;
  S.db = p.database.id;
  S.cs = p.database.connections[0].endpoints.direct.connectionString;
  await waitReady(ctx.c, S.db);
  // the first full backup runs a few transactions of its own; let it finish
  await backupsIdle(S.db);
  assert.ok(await until(async () => (await used(S.db)).storage.used > 0, { timeoutMs: 15000 }), 'no storage sampled');
});

ctx.it('the default period is the current month until now; units are ops and GiB', async () => {
  const before = Date.now();
  const r = expectStatus(await usage(S.db), 200);
  const now = new Date();
  const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString();
  assert.equal(r.period.start, first);
  assert.ok(Math.abs(Date.parse(r.period.end) - before) < 5000, `period.end ${r.period.end}`);
  assert.ok(Math.abs(Date.parse(r.generatedAt) - before) < 5000, `generatedAt ${r.generatedAt}`);
  assert.equal(r.metrics.operations.unit, 'ops');
  assert.equal(r.metrics.storage.unit, 'GiB');
  // an empty PostgreSQL database is a few MiB
  assert.ok(r.metrics.storage.used > 1 / 1024 && r.metrics.storage.used < 0.1, `storage ${r.metrics.storage.used}`);
});

ctx.it('operations count the transactions the database ran', async () => {
  // settle: nothing else runs on the database now
  let base = (await used(S.db)).operations.used;
  await until(async () => {
    await new Promise((r) => setTimeout(r, 2500));
    const now = (await used(S.db)).operations.used;
    const same = now === base;
    base = now;
    return same;
  }, { timeoutMs: 30000, intervalMs: 10 });
  const N = 300;
  const c = await connect(S.cs);
  try {
    for (let i = 0; i < N; i++) await c.query('SELECT 1');
  } finally {
    await closeQuietly(c);
  }
  let got;
  assert.ok(await until(async () => (got = (await used(S.db)).operations.used) >= base + N, { timeoutMs: 20000, intervalMs: 500 }),
    `operations ${got}, want at least ${base} + ${N}`);
  // the client's own session adds a few (pg's connect runs none; the sampler's are not counted)
  assert.ok(got <= base + N + 10, `operations ${got}, want at most ${base} + ${N} + 10`);
});

ctx.it('storage follows the size of the data', async () => {
  const before = (await used(S.db)).storage.used;
  await sql(S.cs, "CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 100000) g");
  let after;
  assert.ok(await until(async () => (after = (await used(S.db)).storage.used) > before + 15 / 1024, { timeoutMs: 20000, intervalMs: 500 }),
    `storage ${before} -> ${after} GiB, want 20+ MiB more`);
  assert.ok(after < before + 100 / 1024, `storage ${after} GiB`);
});

ctx.it('periods: dates and date-times select days; a period without samples is zero', async () => {
  const today = new Date().toISOString().slice(0, 10);
  const all = await used(S.db);
  const day = expectStatus(await usage(S.db, { startDate: today, endDate: today }), 200);
  assert.equal(day.period.start, `${today}T00:00:00.000Z`);
  assert.equal(day.period.end, `${today}T23:59:59.999Z`);
  assert.ok(day.metrics.operations.used >= all.operations.used);
  const old = expectStatus(await usage(S.db, { startDate: '2020-01-01', endDate: '2020-01-31T12:00:00+02:00' }), 200);
  assert.equal(old.period.end, '2020-01-31T10:00:00.000Z');
  assert.equal(old.metrics.operations.used, 0);
  assert.equal(old.metrics.storage.used, 0);
});

ctx.it('errors: 400 naming startDate or endDate, 404 for an unknown database', async () => {
  expectError(await usage(S.db, { startDate: 'yesterday' }), 400, { field: 'startDate' });
  expectError(await usage(S.db, { startDate: '2026-02-30' }), 400, { field: 'startDate' });
  expectError(await usage(S.db, { endDate: '2026-11-01T10:00:00' }), 400, { field: 'endDate' });
  expectError(await usage(S.db, { startDate: '2026-11-02', endDate: '2026-11-01' }), 400, { field: 'endDate' });
  expectError(await usage(unknownLike(S.db)), 404, { field: 'databaseId' });
  // another workspace's database looks unknown (isolation.test.mjs covers the rule)
});

ctx.it('a deleted database has no usage: 404 (its rows go with it, see test_store)', async () => {
  expectStatus(await call(ctx.c, 'DELETE', '/v1/projects/{id}', { params: { path: { id: S.project } } }), 204);
  expectError(await usage(S.db), 404, { field: 'databaseId' });
});

ctx.itShutsDownCleanly();
