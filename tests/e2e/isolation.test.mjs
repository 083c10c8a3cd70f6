// Workspace isolation: ids of another workspace behave exactly like ids that do not exist.
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { client, call, expectStatus, expectError, waitReady, listAll, unknownLike, uniq } from './lib/api.mjs';
import { sql } from './lib/pg.mjs';

const ctx = useServer('isolation');
const A = {};
const B = {};

async function populate(side, c) {
  side.c = c;
  const p = expectStatus(await call(c, 'POST', '/v1/projects', { body: { name: uniq('iso') } }), 201).data;
  side.project = p;
  side.db = p.database;
  side.workspaceId = p.workspace.id;
  side.conn = expectStatus(await call(c, 'POST', '/v1/connections', { body: { databaseId: p.database.id, name: uniq('iso-conn') } }), 201).data;
  side.branch = expectStatus(await call(c, 'POST', '/v1/projects/{projectId}/branches', { params: { path: { projectId: p.id } }, body: { gitName: `iso-${Date.now().toString(36)}` } }), 201).data;
  await waitReady(c, p.database.id);
}

// Requests that name one foreign id each; f(ids) builds [method, template, init].
const probes = [
  ['GET project', (x) => ['GET', '/v1/projects/{id}', { params: { path: { id: x.project } } }]],
  ['PATCH project', (x) => ['PATCH', '/v1/projects/{id}', { params: { path: { id: x.project } }, body: { name: 'stolen' } }]],
  ['GET project branches', (x) => ['GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId: x.project } } }]],
  ['POST project branch', (x) => ['POST', '/v1/projects/{projectId}/branches', { params: { path: { projectId: x.project } }, body: { gitName: 'stolen' } }]],
  ['GET project databases', (x) => ['GET', '/v1/projects/{projectId}/databases', { params: { path: { projectId: x.project } } }]],
  ['POST project database', (x) => ['POST', '/v1/projects/{projectId}/databases', { params: { path: { projectId: x.project } }, body: { name: 'stolen' } }]],
  ['POST /v1/databases projectId', (x) => ['POST', '/v1/databases', { body: { projectId: x.project, name: 'stolen' } }]],
  ['GET database', (x) => ['GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: x.db } } }]],
  ['PATCH database', (x) => ['PATCH', '/v1/databases/{databaseId}', { params: { path: { databaseId: x.db } }, body: { name: 'stolen' } }]],
  ['GET database connections', (x) => ['GET', '/v1/databases/{databaseId}/connections', { params: { path: { databaseId: x.db } } }]],
  ['POST database connection', (x) => ['POST', '/v1/databases/{databaseId}/connections', { params: { path: { databaseId: x.db } }, body: { name: 'stolen' } }]],
  ['POST /v1/connections databaseId', (x) => ['POST', '/v1/connections', { body: { databaseId: x.db, name: 'stolen' } }]],
  ['GET connection', (x) => ['GET', '/v1/connections/{id}', { params: { path: { id: x.conn } } }]],
  ['rotate connection', (x) => ['POST', '/v1/connections/{id}/rotate', { params: { path: { id: x.conn } } }]],
  ['GET branch', (x) => ['GET', '/v1/branches/{branchId}', { params: { path: { branchId: x.branch } } }]],
  ['PATCH branch', (x) => ['PATCH', '/v1/branches/{branchId}', { params: { path: { branchId: x.branch } }, body: { isDefault: true } }]],
  ['GET workspace', (x) => ['GET', '/v1/workspaces/{id}', { params: { path: { id: x.workspace } } }]],
  ['GET workspace subscription', (x) => ['GET', '/v1/workspaces/{id}/subscription', { params: { path: { id: x.workspace } } }]],
  ['transfer project', (x) => ['POST', '/v1/projects/{id}/transfer', { params: { path: { id: x.project } }, body: { recipientAccessToken: 'pfs_probe' } }]],
  ['DELETE connection', (x) => ['DELETE', '/v1/connections/{id}', { params: { path: { id: x.conn } } }]],
  ['DELETE branch', (x) => ['DELETE', '/v1/branches/{branchId}', { params: { path: { branchId: x.branch } } }]],
  ['DELETE database', (x) => ['DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: x.db } } }]],
  ['DELETE project', (x) => ['DELETE', '/v1/projects/{id}', { params: { path: { id: x.project } } }]],
];

const idsOf = (s) => ({ project: s.project.id, db: s.db.id, conn: s.conn.id, branch: s.branch.id, workspace: s.workspaceId });

function scrub(body, ids) {
  let t = JSON.stringify(body ?? null);
  for (const id of ids) t = t.split(id).join('<id>');
  return JSON.parse(t);
}

async function probeAll(c, owner) {
  const real = idsOf(owner);
  const fake = Object.fromEntries(Object.entries(real).map(([k, v]) => [k, unknownLike(v)]));
  for (const [what, f] of probes) {
    const [m, t, initReal] = f(real);
    const [, , initFake] = f(fake);
    const foreign = await call(c, m, t, initReal);
    const unknown = await call(c, m, t, initFake);
    const op = foreign.opId;
    assert.equal(foreign.status, unknown.status, `${what}: foreign id answered ${foreign.status} ${JSON.stringify(foreign.body)}, unknown id ${unknown.status} ${JSON.stringify(unknown.body)}`);
    assert.deepEqual(scrub(foreign.body, Object.values(real)), scrub(unknown.body, Object.values(fake)), `${what}: foreign and unknown ids must answer the same body`);
    if (foreign.status >= 400) {
      expectError(foreign, foreign.status, { what });
      // The contract declares 404 for these unless noted; "exactly like an unknown id" is the rule.
      if (!(op === 'getV1DatabasesByDatabaseIdConnections')) assert.equal(foreign.status, 404, `${what}: expected 404, got ${foreign.status}`);
    } else {
      // only list endpoints may answer 200, and then with nothing in them
      assert.equal(foreign.status, 200, `${what}: ${foreign.status}`);
      assert.deepEqual(foreign.body.data, [], `${what}: a foreign list must be empty`);
    }
  }
}

async function assertIntact(s) {
  const p = expectStatus(await call(s.c, 'GET', '/v1/projects/{id}', { params: { path: { id: s.project.id } } }), 200).data;
  assert.equal(p.name, s.project.name, 'project renamed by a foreign token');
  const d = expectStatus(await call(s.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: s.db.id } } }), 200).data;
  assert.equal(d.name, s.db.name);
  assert.equal(d.status, 'ready');
  expectStatus(await call(s.c, 'GET', '/v1/connections/{id}', { params: { path: { id: s.conn.id } } }), 200);
  const br = expectStatus(await call(s.c, 'GET', '/v1/branches/{branchId}', { params: { path: { branchId: s.branch.id } } }), 200).data;
  assert.equal(br.isDefault, false, 'branch promoted by a foreign token');
  const branches = expectStatus(await call(s.c, 'GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId: s.project.id } } }), 200).data;
  assert.ok(!branches.some((b) => b.gitName === 'stolen'), 'branch created by a foreign token');
  const dbs = await listAll(s.c, '/v1/databases', { params: { query: { projectId: s.project.id } } });
  assert.deepEqual(dbs.map((x) => x.id), [s.db.id], 'database created in a foreign project');
  const conns = await listAll(s.c, '/v1/connections', { params: { query: { databaseId: s.db.id } } });
  assert.equal(conns.length, 2, `connections of ${s.db.id}: ${conns.map((x) => x.name)}`);
  // the credential still works (not rotated or dropped)
  await sql(s.conn.endpoints.direct.connectionString, 'SELECT 1');
}

async function assertListsExclude(c, other) {
  const ids = new Set(Object.values(idsOf(other)));
  const lists = [
    await listAll(c, '/v1/projects'),
    await listAll(c, '/v1/databases'),
    await listAll(c, '/v1/connections'),
    await listAll(c, '/v1/workspaces'),
  ];
  for (const item of lists.flat()) assert.ok(!ids.has(item.id), `foreign ${item.type} ${item.id} visible in a list`);
  // list filters naming a foreign id behave like filters naming an unknown id
  for (const [t, q] of [['/v1/databases', { projectId: other.project.id }], ['/v1/connections', { databaseId: other.db.id }], ['/v1/databases', { branchId: other.branch.id }]]) {
    const key = Object.keys(q)[0];
    const foreign = await call(c, 'GET', t, { params: { query: q } });
    const unknown = await call(c, 'GET', t, { params: { query: { [key]: unknownLike(q[key]) } } });
    assert.equal(foreign.status, unknown.status, `${t}?${key}=<foreign>: ${foreign.status} vs unknown ${unknown.status}`);
    if (foreign.status === 200) assert.deepEqual(foreign.body.data, [], `${t}?${key}=<foreign> lists foreign items`);
  }
}

ctx.it('setup: workspace B (CLI) with its own token; A and B each get a project, database, connection, branch', async () => {
  B.workspaceCli = await ctx.server.createWorkspace(uniq('ws-b'));
  assert.ok(B.workspaceCli, 'workspace create printed an id');
  const tokenB = await ctx.server.token({ workspace: B.workspaceCli, name: 'e2e-b' });
  assert.notEqual(tokenB, ctx.server.adminToken);
  await populate(A, ctx.c);
  await populate(B, client(ctx.server, tokenB));
  assert.equal(B.workspaceId, B.workspaceCli, 'B\'s project lives in the workspace the CLI created');
  assert.notEqual(A.workspaceId, B.workspaceId);
});

ctx.it('B\'s token: every A id answers exactly like an unknown id (404), and A is left intact', async () => {
  await probeAll(B.c, { ...A, workspaceId: A.workspaceId });
  await assertIntact(A);
});

ctx.it('B\'s lists and filters show nothing of A', async () => {
  await assertListsExclude(B.c, A);
  const ws = await listAll(B.c, '/v1/workspaces');
  assert.deepEqual(ws.map((w) => w.id), [B.workspaceId]);
});

ctx.it('A\'s token: likewise for B\'s ids and lists', async () => {
  await probeAll(A.c, B);
  await assertIntact(B);
  await assertListsExclude(A.c, B);
});

ctx.it('POST /v1/projects naming the other workspace creates nothing there', async () => {
  const before = (await listAll(B.c, '/v1/projects')).map((p) => p.id).sort();
  const foreign = await call(A.c, 'POST', '/v1/projects', { body: { name: 'stolen', workspaceId: B.workspaceId, createDatabase: false } });
  const unknown = await call(A.c, 'POST', '/v1/projects', { body: { name: 'stolen', workspaceId: unknownLike(B.workspaceId), createDatabase: false } });
  assert.equal(foreign.status, unknown.status, `workspaceId foreign ${foreign.status} vs unknown ${unknown.status}`);
  assert.ok(foreign.status >= 400, `POST /v1/projects with a foreign workspaceId: expected an error, got ${foreign.status}`);
  expectError(foreign, foreign.status);
  assert.deepEqual((await listAll(B.c, '/v1/projects')).map((p) => p.id).sort(), before);
});

ctx.itShutsDownCleanly();
