// Cursor pagination over 32 real databases; limit and cursor validation.
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, expectError, uniq, waitReady } from './lib/api.mjs';

const ctx = useServer('pagination');
const S = {};

ctx.it('setup: a project (default database) + 31 databases created in parallel batches', async () => {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('pages') } }), 201).data;
  S.project = p;
  S.ids = [p.database.id];
  for (let i = 0; i < 31; i += 8) {
    const batch = [];
    for (let j = i; j < Math.min(31, i + 8); j++) {
      batch.push(call(ctx.c, 'POST', '/v1/databases', { body: { projectId: p.id, name: `page-db-${String(j).padStart(2, '0')}` } }));
    }
    for (const r of await Promise.all(batch)) S.ids.push(expectStatus(r, 201, 'POST /v1/databases').data.id);
  }
  assert.equal(new Set(S.ids).size, 32, 'ids are unique');
}, { timeout: 180000 });

async function pageThrough(template, init, limit) {
  const seen = [];
  let cursor;
  const sizes = [];
  for (let page = 0; page < 20; page++) {
    const query = { ...(init.params?.query || {}), limit, ...(cursor !== undefined ? { cursor } : {}) };
    const r = await call(ctx.c, 'GET', template, { ...init, params: { ...(init.params || {}), query } });
    const body = expectStatus(r, 200, `page ${page + 1} of ${template}`);
    assert.ok(body.data.length <= limit, `page ${page + 1}: ${body.data.length} items > limit ${limit}`);
    sizes.push(body.data.length);
    seen.push(...body.data.map((d) => d.id));
    if (!body.pagination.hasMore) {
      assert.equal(body.pagination.nextCursor, null, 'last page: nextCursor null');
      return { seen, sizes };
    }
    assert.equal(body.data.length, limit, `a page with hasMore=true must be full (page ${page + 1})`);
    assert.ok(typeof body.pagination.nextCursor === 'string' && body.pagination.nextCursor.length > 0, 'hasMore=true needs nextCursor');
    cursor = body.pagination.nextCursor;
  }
  assert.fail(`${template}: did not end within 20 pages`);
}

function assertExactlyOnce(seen, expected, what) {
  const dupes = seen.filter((id, i) => seen.indexOf(id) !== i);
  assert.deepEqual(dupes, [], `${what}: ids seen twice`);
  assert.deepEqual([...seen].sort(), [...expected].sort(), `${what}: every id exactly once`);
}

ctx.it('GET /v1/databases?limit=10 following nextCursor: every id exactly once, 10/10/10/2', async () => {
  const { seen, sizes } = await pageThrough('/v1/databases', {}, 10);
  assertExactlyOnce(seen, S.ids, '/v1/databases');
  assert.deepEqual(sizes, [10, 10, 10, 2]);
});

ctx.it('GET /v1/databases?projectId=&limit=10 and /v1/projects/{id}/databases?limit=10 page the same set', async () => {
  const a = await pageThrough('/v1/databases', { params: { query: { projectId: S.project.id } } }, 10);
  assertExactlyOnce(a.seen, S.ids, '/v1/databases?projectId=');
  const b = await pageThrough('/v1/projects/{projectId}/databases', { params: { path: { projectId: S.project.id } } }, 10);
  assertExactlyOnce(b.seen, S.ids, '/v1/projects/{id}/databases');
  const c = await pageThrough('/v1/databases', {}, 7);
  assertExactlyOnce(c.seen, S.ids, '/v1/databases limit 7');
});

ctx.it('the order is stable while databases change status (page again after a pause)', async () => {
  const first = await pageThrough('/v1/databases', {}, 10);
  await new Promise((r) => setTimeout(r, 1000));
  const second = await pageThrough('/v1/databases', {}, 10);
  assert.deepEqual(second.seen, first.seen);
});

// A page keeps each item's text under the row's revision (docs/api.md): every change an item
// shows must reach the next page at once. Each page is read twice before a change (its texts
// kept), and after it every item of the page must equal the database's own GET.
ctx.it('a page shows each change to its items at once: rename, connection made and removed, project renamed, delete', async () => {
  const [one, two] = [S.ids[3], S.ids[4]];
  const page = async () => {
    const r = expectStatus(await call(ctx.c, 'GET', '/v1/databases', { params: { query: { projectId: S.project.id, limit: 100 } } }), 200);
    return new Map(r.data.map((d) => [d.id, d]));
  };
  const same = async (what, ids = [one, two]) => {
    const items = await page();
    for (const id of ids) {
      const got = expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: id } } }), 200).data;
      assert.deepEqual(items.get(id), got, `${what}: the page's item of ${id} is the database's GET`);
    }
    return items;
  };
  await page();
  await same('before any change');

  expectStatus(await call(ctx.c, 'PATCH', '/v1/databases/{databaseId}', { params: { path: { databaseId: one } }, body: { name: 'renamed-once' } }), 200);
  assert.equal((await same('after a rename')).get(one).name, 'renamed-once');

  const before = (await page()).get(two).connections.length;
  const conn = expectStatus(await call(ctx.c, 'POST', '/v1/databases/{databaseId}/connections', { params: { path: { databaseId: two } }, body: { name: 'kept-text' } }), 200).data;
  let items = await same('after a connection was made');
  assert.equal(items.get(two).connections.length, before + 1);
  assert.ok(items.get(two).connections.some((c) => c.id === conn.id), 'the new connection is listed');

  expectStatus(await call(ctx.c, 'DELETE', '/v1/connections/{id}', { params: { path: { id: conn.id } } }), 204);
  items = await same('after the connection was removed');
  assert.ok(!items.get(two).connections.some((c) => c.id === conn.id), 'the removed connection is gone');

  expectStatus(await call(ctx.c, 'PATCH', '/v1/projects/{id}', { params: { path: { id: S.project.id } }, body: { name: 'pages-renamed' } }), 200);
  items = await same('after the project was renamed');
  for (const d of items.values()) assert.equal(d.project.name, 'pages-renamed', `${d.id}: its project's new name`);

  const extra = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name: 'kept-then-deleted' } }), 201).data;
  await waitReady(ctx.c, extra.id);
  await same('a new database', [extra.id]);
  expectStatus(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: extra.id } } }), 204);
  assert.ok(!(await page()).has(extra.id), 'a deleted database leaves the page');
}, { timeout: 120000 });

ctx.it('limit 0, 101, "abc", -1, 1.5 -> 400 with a hint naming `limit` (lists of databases, projects, connections)', async () => {
  const lists = [
    ['/v1/databases', {}],
    ['/v1/projects', {}],
    ['/v1/connections', {}],
    ['/v1/projects/{projectId}/databases', { path: { projectId: S.project.id } }],
  ];
  for (const [t, params] of lists) {
    for (const limit of [0, 101, 'abc', -1, 1.5]) {
      const r = await call(ctx.c, 'GET', t, { params: { ...params, query: { limit } } });
      expectError(r, 400, { field: 'limit', what: `GET ${t}?limit=${limit}` });
    }
    expectStatus(await call(ctx.c, 'GET', t, { params: { ...params, query: { limit: 1 } } }), 200, `GET ${t}?limit=1`);
    expectStatus(await call(ctx.c, 'GET', t, { params: { ...params, query: { limit: 100 } } }), 200, `GET ${t}?limit=100`);
  }
});

ctx.it('a bad cursor -> 400 with a hint naming `cursor`', async () => {
  for (const cursor of ['not-a-cursor', '%%%', 'A'.repeat(600)]) {
    const r = await call(ctx.c, 'GET', '/v1/databases', { params: { query: { limit: 10, cursor } } });
    expectError(r, 400, { field: 'cursor', what: `GET /v1/databases?cursor=${cursor.slice(0, 20)}` });
  }
  const r = await call(ctx.c, 'GET', '/v1/projects', { params: { query: { cursor: 'not-a-cursor' } } });
  expectError(r, 400, { field: 'cursor', what: 'GET /v1/projects?cursor=not-a-cursor' });
});

ctx.itShutsDownCleanly();
