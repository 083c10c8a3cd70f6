// Temporary projects: expiresAt (an extension of POST and PATCH /v1/projects). Between the
// minimum (--expiry-min-seconds 2 here, a test-only flag; 5 minutes by default) and 30 days
// ahead, else 400 / 422 naming expiresAt; the reaper deletes the whole project (its databases:
// servers and files; its backups) once it passes; a PATCH null or a transfer keeps it; the
// expiry survives a restart.
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { call, client, expectStatus, expectError, waitReady } from './lib/api.mjs';
import { postmasters, instanceDirs, sleep } from './lib/procs.mjs';

const ctx = useServer('expiry', { extraArgs: ['--expiry-min-seconds', '2', '--spares', '1'] });
const it = ctx.it;
const ahead = (ms) => new Date(Date.now() + ms).toISOString();
const create = (body) => call(ctx.c, 'POST', '/v1/projects', { body });
const patch = (id, body) => call(ctx.c, 'PATCH', '/v1/projects/{id}', { params: { path: { id } }, body });
const get = (id) => call(ctx.c, 'GET', '/v1/projects/{id}', { params: { path: { id } } });

async function gone(id, { timeoutMs = 20000 } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await get(id);
    if (r.status === 404) return;
    expectStatus(r, 200);
    if (Date.now() > end) assert.fail(`project ${id} still there ${timeoutMs} ms after its expiry ${r.body.data.expiresAt}`);
    await sleep(250);
  }
}

it('expiresAt out of range or not a date-time: 400 on POST, 422 on PATCH, hint expiresAt', async () => {
  for (const bad of ['tomorrow', 42, ahead(-60e3), ahead(500), ahead(31 * 86400e3), null]) {
    expectError(await create({ name: 'bad-expiry', createDatabase: false, expiresAt: bad }), 400, { field: 'expiresAt', what: JSON.stringify(bad) });
  }
  const p = expectStatus(await create({ name: 'no-expiry', createDatabase: false }), 201).data;
  assert.equal(p.expiresAt, null);
  for (const bad of ['soon', ahead(-1000), ahead(40 * 86400e3), true]) {
    expectError(await patch(p.id, { expiresAt: bad }), 422, { field: 'expiresAt', what: JSON.stringify(bad) });
  }
  const at = ahead(29 * 86400e3);
  const ok = expectStatus(await patch(p.id, { expiresAt: at }), 200).data;
  assert.equal(Date.parse(ok.expiresAt), Date.parse(at));
  assert.equal(expectStatus(await get(p.id), 200).data.expiresAt, ok.expiresAt);
  const listed = expectStatus(await call(ctx.c, 'GET', '/v1/projects', {}), 200).data.find((x) => x.id === p.id);
  assert.equal(listed.expiresAt, ok.expiresAt);
});

it('an expired project is deleted whole: its databases, their servers and files', async () => {
  const p = expectStatus(await create({ name: 'temporary', expiresAt: ahead(4000) }), 201).data;
  assert.ok(p.expiresAt);
  const db = p.database.id;
  await waitReady(ctx.c, db);
  assert.ok(postmasters(ctx.server.home).some((x) => x.dbId === db), 'its server runs');
  await gone(p.id);
  expectError(await call(ctx.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: db } } }), 404);
  for (let i = 0; i < 100 && (postmasters(ctx.server.home).some((x) => x.dbId === db) || instanceDirs(ctx.server.home).includes(db)); i++) await sleep(100);
  assert.ok(!postmasters(ctx.server.home).some((x) => x.dbId === db), 'its server stopped');
  assert.ok(!instanceDirs(ctx.server.home).includes(db), 'its files removed');
  assert.match(ctx.server.log(), new RegExp(`project ${p.id} expired at .*: deleted with 1 database`));
});

it('PATCH expiresAt null keeps the project', async () => {
  const p = expectStatus(await create({ name: 'kept', createDatabase: false, expiresAt: ahead(3000) }), 201).data;
  assert.equal(expectStatus(await patch(p.id, { expiresAt: null }), 200).data.expiresAt, null);
  await sleep(5000);
  assert.equal(expectStatus(await get(p.id), 200).data.expiresAt, null);
});

it('a transfer (a claim) ends the expiry', async () => {
  const ws = await ctx.server.createWorkspace('claimer');
  const tok = await ctx.server.token({ workspace: ws, name: 'claimer' });
  const p = expectStatus(await create({ name: 'claimed', createDatabase: false, expiresAt: ahead(3000) }), 201).data;
  expectStatus(await call(ctx.c, 'POST', '/v1/projects/{id}/transfer', { params: { path: { id: p.id } }, body: { recipientAccessToken: tok } }), 204);
  await sleep(5000);
  const cB = client(ctx.server, tok);
  const got = expectStatus(await call(cB, 'GET', '/v1/projects/{id}', { params: { path: { id: p.id } } }), 200).data;
  assert.equal(got.expiresAt, null);
});

it('the expiry survives a restart', async () => {
  const p = expectStatus(await create({ name: 'restarted', createDatabase: false, expiresAt: ahead(6000) }), 201).data;
  await ctx.server.restart();
  assert.equal(expectStatus(await get(p.id), 200).data.expiresAt, p.expiresAt);
  await gone(p.id);
});

ctx.itShutsDownCleanly();
