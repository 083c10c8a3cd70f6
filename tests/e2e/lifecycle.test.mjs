// Workspaces, projects, branches, databases and regions: statuses and shapes per the contract.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, expectError, waitReady, listAll, unknownLike, uniq } from './lib/api.mjs';
import { sql, connect, closeQuietly, connectFails } from './lib/pg.mjs';
import { portClosed, portBindable, until, instanceDir, instanceOf } from './lib/procs.mjs';

const ctx = useServer('lifecycle');
const S = {}; // shared state between the ordered tests of this file

const getProject = (id) => call(ctx.c, 'GET', '/v1/projects/{id}', { params: { path: { id } } });
const getDb = (databaseId) => call(ctx.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId } } });
const getBranch = (branchId) => call(ctx.c, 'GET', '/v1/branches/{branchId}', { params: { path: { branchId } } });
const branches = (projectId, query) => call(ctx.c, 'GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId }, query } });
const listDbs = (query) => call(ctx.c, 'GET', '/v1/databases', { params: { query: { limit: 100, ...query } } });

ctx.it('workspaces: GET /v1/workspaces lists the token\'s workspace; GET /v1/workspaces/{id}', async () => {
  const list = expectStatus(await call(ctx.c, 'GET', '/v1/workspaces', {}), 200);
  assert.equal(list.data.length, 1, `a service token sees exactly its workspace: ${JSON.stringify(list.data)}`);
  assert.equal(list.pagination.hasMore, false);
  const ws = list.data[0];
  S.workspace = ws;
  const one = expectStatus(await call(ctx.c, 'GET', '/v1/workspaces/{id}', { params: { path: { id: ws.id } } }), 200);
  assert.equal(one.data.id, ws.id);
  assert.equal(one.data.name, ws.name);
  expectError(await call(ctx.c, 'GET', '/v1/workspaces/{id}', { params: { path: { id: unknownLike(ws.id) } } }), 404);
});

ctx.it('POST /v1/projects: 201 with a default database whose connection carries the direct connection string and password', async () => {
  const name = uniq('proj');
  const r = await call(ctx.c, 'POST', '/v1/projects', { body: { name, region: 'us-east-1' } });
  const p = expectStatus(r, 201).data;
  assert.equal(p.name, name);
  assert.equal(p.type, 'project');
  assert.equal(p.workspace.id, S.workspace.id);
  assert.ok(p.database, 'createDatabase defaults to true: data.database must be present');
  const db = p.database;
  assert.ok(['provisioning', 'ready'].includes(db.status));
  assert.equal(db.isDefault, true, 'the database created with the project is its default database');
  assert.equal(db.region.id, 'us-east-1');
  assert.ok(db.connections.length >= 1, 'database.connections has the first connection');
  const conn = db.connections.find((c) => c.endpoints?.direct?.connectionString);
  assert.ok(conn, `a connection with endpoints.direct.connectionString: ${JSON.stringify(db.connections)}`);
  assert.ok(db.directConnection && db.directConnection.pass, 'database.directConnection with pass');
  assert.ok(db.directConnection.pass.length >= 32, `password of at least 32 characters, got ${db.directConnection.pass.length}`);
  assert.ok(db.branchId, 'the default database is on the default branch');
  S.project = p;
  S.db0 = db;
  S.conn0 = conn;
  const ready = await waitReady(ctx.c, db.id);
  assert.equal(ready.project.id, p.id);
  const rows = await sql(conn.endpoints.direct.connectionString, 'SELECT 1 AS one');
  assert.equal(rows[0].one, 1);
});

ctx.it('POST /v1/projects with createDatabase:false: 201, database null, no database listed', async () => {
  const r = await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('bare'), createDatabase: false } });
  const p = expectStatus(r, 201).data;
  assert.equal(p.database, null);
  S.bare = p;
  const dbs = expectStatus(await listDbs({ projectId: p.id }), 200);
  assert.deepEqual(dbs.data, []);
});

ctx.it('GET/PATCH project; GET /v1/projects lists both', async () => {
  const g = expectStatus(await getProject(S.project.id), 200).data;
  for (const k of ['id', 'name', 'logicalId', 'createdAt', 'url']) assert.deepEqual(g[k], S.project[k], `GET project .${k}`);
  assert.equal(g.workspace.id, S.workspace.id);
  const newName = uniq('renamed');
  const pr = expectStatus(await call(ctx.c, 'PATCH', '/v1/projects/{id}', { params: { path: { id: S.project.id } }, body: { name: newName } }), 200).data;
  assert.equal(pr.name, newName);
  assert.equal(pr.id, S.project.id);
  assert.equal(expectStatus(await getProject(S.project.id), 200).data.name, newName);
  S.project.name = newName;
  const all = await listAll(ctx.c, '/v1/projects');
  const ids = all.map((x) => x.id);
  assert.ok(ids.includes(S.project.id) && ids.includes(S.bare.id), `GET /v1/projects: ${ids}`);
  expectError(await getProject(unknownLike(S.project.id)), 404);
});

ctx.it('DELETE project: 204, then GET 404 and gone from the list', async () => {
  const r = await call(ctx.c, 'DELETE', '/v1/projects/{id}', { params: { path: { id: S.bare.id } } });
  expectStatus(r, 204);
  expectError(await getProject(S.bare.id), 404);
  const ids = (await listAll(ctx.c, '/v1/projects')).map((x) => x.id);
  assert.ok(!ids.includes(S.bare.id));
  expectError(await call(ctx.c, 'DELETE', '/v1/projects/{id}', { params: { path: { id: S.bare.id } } }), 404, { what: 'second DELETE' });
});

ctx.it('branches: the project has one default production branch; GET /v1/branches/{id}', async () => {
  const list = expectStatus(await branches(S.project.id), 200);
  assert.equal(list.data.length, 1, JSON.stringify(list.data));
  const b = list.data[0];
  assert.equal(b.isDefault, true);
  assert.equal(b.role, 'production');
  assert.equal(b.project.id, S.project.id);
  assert.equal(S.db0.branchId, b.id, 'the default database is on the default branch');
  S.mainBranch = b;
  const one = expectStatus(await getBranch(b.id), 200).data;
  assert.equal(one.gitName, b.gitName);
  expectError(await getBranch(unknownLike(b.id)), 404);
});

ctx.it('POST branch: 201 preview branch; duplicate gitName 409; empty gitName 422; gitName filter', async () => {
  const gitName = `feature-${Date.now().toString(36)}`;
  const r = await call(ctx.c, 'POST', '/v1/projects/{projectId}/branches', { params: { path: { projectId: S.project.id } }, body: { gitName } });
  const b = expectStatus(r, 201).data;
  assert.equal(b.gitName, gitName);
  assert.equal(b.isDefault, false);
  assert.equal(b.role, 'preview');
  assert.equal(b.project.id, S.project.id);
  S.featureBranch = b;
  const dup = await call(ctx.c, 'POST', '/v1/projects/{projectId}/branches', { params: { path: { projectId: S.project.id } }, body: { gitName } });
  expectError(dup, 409, { what: 'duplicate gitName' });
  const bad = await call(ctx.c, 'POST', '/v1/projects/{projectId}/branches', { params: { path: { projectId: S.project.id } }, body: { gitName: '' } });
  expectError(bad, 422, { field: 'gitName', what: 'empty gitName' });
  const f = expectStatus(await branches(S.project.id, { gitName }), 200);
  assert.deepEqual(f.data.map((x) => x.id), [b.id]);
  const all = expectStatus(await branches(S.project.id), 200);
  assert.equal(all.data.length, 2);
});

ctx.it('PATCH branch isDefault: promote moves the default; demoting the default is 422', async () => {
  const pr = await call(ctx.c, 'PATCH', '/v1/branches/{branchId}', { params: { path: { branchId: S.featureBranch.id } }, body: { isDefault: true } });
  assert.equal(expectStatus(pr, 200).data.isDefault, true);
  let list = expectStatus(await branches(S.project.id), 200).data;
  assert.deepEqual(list.filter((x) => x.isDefault).map((x) => x.id), [S.featureBranch.id], 'exactly one default branch after promotion');
  const demote = await call(ctx.c, 'PATCH', '/v1/branches/{branchId}', { params: { path: { branchId: S.featureBranch.id } }, body: { isDefault: false } });
  expectError(demote, 422, { what: 'demote the default branch' });
  const back = await call(ctx.c, 'PATCH', '/v1/branches/{branchId}', { params: { path: { branchId: S.mainBranch.id } }, body: { isDefault: true } });
  assert.equal(expectStatus(back, 200).data.isDefault, true);
  list = expectStatus(await branches(S.project.id), 200).data;
  assert.deepEqual(list.filter((x) => x.isDefault).map((x) => x.id), [S.mainBranch.id]);
});

ctx.it('databases: POST /v1/databases 201 on the default branch; POST /v1/projects/{id}/databases 201', async () => {
  const name = uniq('db');
  const r = await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name, region: 'us-east-1' } });
  const d = expectStatus(r, 201).data;
  assert.equal(d.name, name);
  assert.ok(['provisioning', 'ready'].includes(d.status), `status ${d.status}`);
  assert.equal(d.project.id, S.project.id);
  assert.equal(d.branchId, S.mainBranch.id, 'omitted branch -> the project\'s default branch');
  assert.equal(d.isDefault, false);
  S.db1 = d;
  const r2 = await call(ctx.c, 'POST', '/v1/projects/{projectId}/databases', { params: { path: { projectId: S.project.id } }, body: { name: uniq('pdb') } });
  const d2 = expectStatus(r2, 201).data;
  assert.ok(['provisioning', 'ready'].includes(d2.status));
  assert.equal(d2.project.id, S.project.id);
  S.db2 = d2;
  const one = expectStatus(await getDb(d.id), 200).data;
  assert.equal(one.id, d.id);
  assert.equal(one.name, name);
  const inProject = expectStatus(await call(ctx.c, 'GET', '/v1/projects/{projectId}/databases', { params: { path: { projectId: S.project.id } } }), 200).data.map((x) => x.id);
  for (const id of [S.db0.id, d.id, d2.id]) assert.ok(inProject.includes(id), `GET /v1/projects/{id}/databases contains ${id}`);
});

ctx.it('databases: branchGitName creates the branch; logicalId unique within a branch (409), free across branches', async () => {
  const gitName = `db-branch-${Date.now().toString(36)}`;
  const logicalId = uniq('logical');
  // the contract: logicalId cannot be combined with branchGitName (contract-rules.test.mjs)
  expectError(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, branchGitName: gitName, logicalId } }), 400, { field: 'logicalId' });
  const created = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, branchGitName: gitName, name: uniq('ldb') } }), 201).data;
  const br = expectStatus(await branches(S.project.id, { gitName }), 200).data;
  assert.equal(br.length, 1, `branch ${gitName} created by branchGitName`);
  assert.equal(created.branchId, br[0].id);
  const a = expectStatus(await call(ctx.c, 'PATCH', '/v1/databases/{databaseId}', { params: { path: { databaseId: created.id } }, body: { logicalId } }), 200).data;
  assert.equal(a.logicalId, logicalId);
  assert.equal(a.branchId, br[0].id);
  S.dbBranch = br[0];
  S.dbLogical = a;
  const dupById = await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, branchId: br[0].id, logicalId } });
  expectError(dupById, 409, { what: 'same logicalId on the same branch (by branchId)' });
  const other = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, logicalId, name: uniq('ldb') } }), 201).data;
  assert.equal(other.branchId, S.mainBranch.id);
  S.dbLogicalMain = other;
  S.logicalId = logicalId;
});

ctx.it('GET /v1/databases filters: projectId, logicalId, branchId, branchGitName', async () => {
  const byProject = (await listAll(ctx.c, '/v1/databases', { params: { query: { projectId: S.project.id } } })).map((x) => x.id).sort();
  const expected = [S.db0, S.db1, S.db2, S.dbLogical, S.dbLogicalMain].map((x) => x.id).sort();
  assert.deepEqual(byProject, expected, 'projectId filter');
  const byLogical = expectStatus(await listDbs({ projectId: S.project.id, logicalId: S.logicalId }), 200).data.map((x) => x.id).sort();
  assert.deepEqual(byLogical, [S.dbLogical.id, S.dbLogicalMain.id].sort(), 'logicalId filter');
  const byBranch = expectStatus(await listDbs({ branchId: S.dbBranch.id }), 200).data.map((x) => x.id);
  assert.deepEqual(byBranch, [S.dbLogical.id], 'branchId filter');
  const byGit = expectStatus(await listDbs({ projectId: S.project.id, branchGitName: S.dbBranch.gitName }), 200).data.map((x) => x.id);
  assert.deepEqual(byGit, [S.dbLogical.id], 'branchGitName filter');
  const byMain = expectStatus(await listDbs({ branchId: S.mainBranch.id }), 200).data.map((x) => x.id).sort();
  assert.deepEqual(byMain, [S.db0, S.db1, S.db2, S.dbLogicalMain].map((x) => x.id).sort(), 'branchId filter (default branch)');
});

ctx.it('DELETE branch: default 422, with a database 409, empty preview 204 then 404', async () => {
  expectError(await call(ctx.c, 'DELETE', '/v1/branches/{branchId}', { params: { path: { branchId: S.mainBranch.id } } }), 422, { what: 'delete the default branch' });
  expectError(await call(ctx.c, 'DELETE', '/v1/branches/{branchId}', { params: { path: { branchId: S.dbBranch.id } } }), 409, { what: 'delete a branch with a live database' });
  expectStatus(await call(ctx.c, 'DELETE', '/v1/branches/{branchId}', { params: { path: { branchId: S.featureBranch.id } } }), 204);
  expectError(await getBranch(S.featureBranch.id), 404);
  const ids = expectStatus(await branches(S.project.id), 200).data.map((x) => x.id);
  assert.ok(!ids.includes(S.featureBranch.id));
});

ctx.it('PATCH database name: 200 and GET reflects it', async () => {
  const name = uniq('renamed-db');
  const r = await call(ctx.c, 'PATCH', '/v1/databases/{databaseId}', { params: { path: { databaseId: S.db1.id } }, body: { name } });
  assert.equal(expectStatus(r, 200).data.name, name);
  assert.equal(expectStatus(await getDb(S.db1.id), 200).data.name, name);
});

ctx.it('DELETE database: 204, then 404; its server stops, files go, its port no longer listens; a client still connected is cut', async () => {
  const d = await waitReady(ctx.c, S.db1.id);
  const conn = S.db1.connections.find((c) => c.endpoints?.direct?.connectionString);
  assert.ok(conn, 'POST /v1/databases returned a connection string');
  const cs = conn.endpoints.direct.connectionString;
  const port = conn.endpoints.direct.port;
  await sql(cs, 'SELECT 1');
  const held = await connect(cs); // open across the delete: the data path drops its connections
  await held.query('SELECT 1');
  const inst = instanceOf(ctx.server.home, d.id); // the mapping goes with the row
  assert.match(inst, /^in_/, 'a new database is served by an instance of its own id');
  expectStatus(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: d.id } } }), 204);
  expectError(await getDb(d.id), 404, { what: 'GET after DELETE' });
  await assert.rejects(held.query('SELECT 1'), 'a client connected through the delete is cut');
  await closeQuietly(held);
  assert.equal(ctx.server.sanitizerReport('datapath.log'), null, 'the data path dropped the database cleanly');
  expectError(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: d.id } } }), 404, { what: 'second DELETE' });
  const ids = expectStatus(await listDbs({ projectId: S.project.id }), 200).data.map((x) => x.id);
  assert.ok(!ids.includes(d.id), 'deleted database still listed');
  // docs/api.md: DELETE answers once the server has stopped, its files are gone and its port
  // is free, so no waiting here
  assert.ok(await portClosed(port), `port ${port} of the deleted database still accepts connections after 204`);
  assert.ok(await portBindable(port), `port ${port} of the deleted database cannot be bound after 204`);
  await connectFails(cs, 'deleted database');
  for (const dir of [path.join(ctx.server.home, 'instances', inst), path.join(ctx.server.home, 'run', inst)]) {
    assert.ok(!fs.existsSync(dir), `${dir} still exists after DELETE answered 204`);
  }
  assert.ok(!ctx.server.postmasters().some((p) => p.dbId === d.id), 'postmaster of the deleted database still running');
});

ctx.it('regions: /v1/regions and /v1/regions/postgres list us-east-1 available, the others unavailable', async () => {
  const all = expectStatus(await call(ctx.c, 'GET', '/v1/regions', {}), 200).data;
  const pgAll = all.filter((r) => r.product === 'postgres');
  const use1 = pgAll.find((r) => r.id === 'us-east-1');
  assert.ok(use1, `us-east-1 in /v1/regions: ${JSON.stringify(all)}`);
  if ('status' in use1) assert.equal(use1.status, 'available');
  const pgr = expectStatus(await call(ctx.c, 'GET', '/v1/regions/postgres', {}), 200).data;
  const byId = Object.fromEntries(pgr.map((r) => [r.id, r]));
  assert.equal(byId['us-east-1']?.status, 'available');
  const others = pgr.filter((r) => r.id !== 'us-east-1');
  assert.ok(others.length >= 1, 'other regions are listed');
  for (const r of others) assert.equal(r.status, 'unavailable', `${r.id} should be unavailable`);
  S.unavailableRegion = others[0].id;
});

ctx.it('creating in an unavailable region: 400 with a hint naming `region`, nothing created', async () => {
  const before = (await listAll(ctx.c, '/v1/databases')).map((x) => x.id).sort();
  const r = await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, region: S.unavailableRegion, name: uniq('nope') } });
  expectError(r, 400, { field: 'region', what: `POST /v1/databases region ${S.unavailableRegion}` });
  const rp = await call(ctx.c, 'POST', '/v1/projects/{projectId}/databases', { params: { path: { projectId: S.project.id } }, body: { region: S.unavailableRegion } });
  expectError(rp, 400, { field: 'region', what: `POST /v1/projects/{id}/databases region ${S.unavailableRegion}` });
  const projectsBefore = (await listAll(ctx.c, '/v1/projects')).map((x) => x.id).sort();
  const pr = await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('nope'), region: S.unavailableRegion } });
  assert.ok(pr.status >= 400 && pr.status < 500, `POST /v1/projects in ${S.unavailableRegion}: expected 4xx, got ${pr.status}`);
  expectError(pr, pr.status, { field: 'region' });
  assert.deepEqual((await listAll(ctx.c, '/v1/projects')).map((x) => x.id).sort(), projectsBefore, 'no project half-created');
  assert.deepEqual((await listAll(ctx.c, '/v1/databases')).map((x) => x.id).sort(), before, 'no database half-created');
});

ctx.it('DELETE a project that has databases: 204 removes them (ports close), or 400 keeps everything', async () => {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('doomed') } }), 201).data;
  const db = await waitReady(ctx.c, p.database.id);
  const port = p.database.connections.find((c) => c.endpoints?.direct)?.endpoints.direct.port;
  const r = await call(ctx.c, 'DELETE', '/v1/projects/{id}', { params: { path: { id: p.id } } });
  if (r.status === 204) {
    expectError(await getProject(p.id), 404);
    expectError(await getDb(db.id), 404, { what: 'database of a deleted project' });
    if (port) assert.ok(await until(() => portClosed(port), { timeoutMs: 30000 }), `port ${port} still open after the project was deleted`);
  } else {
    expectError(r, 400, { what: 'DELETE project with databases' });
    expectStatus(await getProject(p.id), 200);
    assert.equal(expectStatus(await getDb(db.id), 200).data.status, 'ready');
  }
});

ctx.itShutsDownCleanly();
