// The contract's own rules (the SDK's dist/index.d.ts, descriptions included): branch roles
// and what cannot be deleted, logicalId combinations, a database made the default by PATCH,
// project settings, project transfer (with credentials that keep working), the workspace
// subscription, and 422 on the lists that type their validation errors 422.
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { client, call, expectStatus, expectError, waitReady, listAll, unknownLike, uniq } from './lib/api.mjs';
import { sql, psql } from './lib/pg.mjs';
import { sleep } from './lib/procs.mjs';
import { createUser, createClient, formLogin } from './lib/oauth.mjs';

const ctx = useServer('contract-rules');
const S = {};

const branchPath = (branchId) => ({ params: { path: { branchId } } });
const getBranch = async (c, id) => expectStatus(await call(c, 'GET', '/v1/branches/{branchId}', branchPath(id)), 200).data;
const newProject = async (c, body = {}) => expectStatus(await call(c, 'POST', '/v1/projects', { body: { name: uniq('rules'), ...body } }), 201).data;
const newBranch = async (c, projectId, body) => expectStatus(await call(c, 'POST', '/v1/projects/{projectId}/branches', { params: { path: { projectId } }, body }), 201).data;
const getDb = (c, databaseId) => call(c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId } } });
const patchDb = (c, databaseId, body) => call(c, 'PATCH', '/v1/databases/{databaseId}', { params: { path: { databaseId } }, body });

ctx.it('branches: the first is production and default, later ones preview; isDefault moves only the default flag', async () => {
  const p = await newProject(ctx.c, { createDatabase: false });
  S.branchProject = p;
  const list = expectStatus(await call(ctx.c, 'GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId: p.id } } }), 200).data;
  assert.equal(list.length, 1);
  const main = list[0];
  assert.equal(main.role, 'production');
  assert.equal(main.isDefault, true);

  const dev = await newBranch(ctx.c, p.id, { gitName: 'dev' });
  assert.equal(dev.role, 'preview');
  assert.equal(dev.isDefault, false);
  // isDefault at create swaps the default flag only
  const feat = await newBranch(ctx.c, p.id, { gitName: 'feature/x', isDefault: true });
  assert.equal(feat.role, 'preview', 'a later branch is preview even when created as the default');
  assert.equal(feat.isDefault, true);
  let m = await getBranch(ctx.c, main.id);
  assert.equal(m.isDefault, false);
  assert.equal(m.role, 'production', 'the production branch keeps its role when it loses the default');

  // PATCH isDefault: the flag moves, roles stay
  const d = expectStatus(await call(ctx.c, 'PATCH', '/v1/branches/{branchId}', { ...branchPath(dev.id), body: { isDefault: true } }), 200).data;
  assert.equal(d.isDefault, true);
  assert.equal(d.role, 'preview');
  assert.equal((await getBranch(ctx.c, feat.id)).isDefault, false);
  m = await getBranch(ctx.c, main.id);
  assert.equal(m.role, 'production');
  assert.equal(m.isDefault, false);
  // a role change is rejected (422, as typed)
  expectError(await call(ctx.c, 'PATCH', '/v1/branches/{branchId}', { ...branchPath(dev.id), body: { role: 'production' } }), 422, { field: 'role' });
  assert.equal((await getBranch(ctx.c, dev.id)).role, 'preview');
  S.branches = { main, dev, feat };
});

ctx.it('branches: the production branch and the default branch cannot be deleted (422); one with a live database is 409', async () => {
  const { main, dev, feat } = S.branches;
  expectError(await call(ctx.c, 'DELETE', '/v1/branches/{branchId}', branchPath(main.id)), 422, { field: 'branchId', what: 'production branch (not the default)' });
  expectError(await call(ctx.c, 'DELETE', '/v1/branches/{branchId}', branchPath(dev.id)), 422, { field: 'branchId', what: 'default branch (preview)' });
  // a preview, non-default branch with a live database
  const db = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.branchProject.id, branchId: feat.id, name: uniq('member') } }), 201).data;
  expectError(await call(ctx.c, 'DELETE', '/v1/branches/{branchId}', branchPath(feat.id)), 409, { field: 'branchId', what: 'branch with a live database' });
  await waitReady(ctx.c, db.id);
  expectStatus(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: db.id } } }), 204);
  expectStatus(await call(ctx.c, 'DELETE', '/v1/branches/{branchId}', branchPath(feat.id)), 204);
  expectError(await call(ctx.c, 'GET', '/v1/branches/{branchId}', branchPath(feat.id)), 404);
  // all three are still what they were
  assert.equal((await getBranch(ctx.c, main.id)).role, 'production');
  assert.equal((await getBranch(ctx.c, dev.id)).isDefault, true);
});

ctx.it('POST /v1/databases: logicalId with branchGitName is 400 naming logicalId; with branchId it is allowed', async () => {
  const p = await newProject(ctx.c);
  S.dbProject = p;
  S.defaultDb = p.database;
  const br = await newBranch(ctx.c, p.id, { gitName: 'staging' });
  S.staging = br;
  const refused = await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: p.id, logicalId: 'orders', branchGitName: 'staging' } });
  expectError(refused, 400, { field: 'logicalId' });
  assert.match(refused.body.error.message, /branchId/, 'the message says to pass branchId instead');
  const ok = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: p.id, logicalId: 'orders', branchId: br.id } }), 201).data;
  assert.equal(ok.isDefault, false);
  S.second = ok;
  const got = expectStatus(await getDb(ctx.c, ok.id), 200).data;
  assert.equal(got.branchId, br.id);
  assert.equal(got.logicalId, 'orders');
  // nothing was created by the refused request
  const dbs = await listAll(ctx.c, '/v1/databases', { params: { query: { projectId: p.id } } });
  assert.deepEqual(dbs.map((d) => d.id).sort(), [p.database.id, ok.id].sort());
});

ctx.it('PATCH /v1/databases/{id}: logicalId with branchId or branchGitName is 409 naming logicalId; alone it is set', async () => {
  const id = S.second.id;
  const a = await patchDb(ctx.c, id, { logicalId: 'orders-2', branchId: S.staging.id });
  expectError(a, 409, { field: 'logicalId' });
  const b = await patchDb(ctx.c, id, { logicalId: 'orders-2', branchGitName: 'main' });
  expectError(b, 409, { field: 'logicalId' });
  let d = expectStatus(await getDb(ctx.c, id), 200).data;
  assert.notEqual(d.logicalId ?? null, 'orders-2', 'a refused PATCH changed nothing');
  d = expectStatus(await patchDb(ctx.c, id, { logicalId: 'orders-2' }), 200).data;
  assert.equal(d.logicalId, 'orders-2');
});

ctx.it('PATCH /v1/databases/{id} isDefault: true makes it the project default (the old one is not); false on the default is refused', async () => {
  await waitReady(ctx.c, S.second.id);
  const made = expectStatus(await patchDb(ctx.c, S.second.id, { isDefault: true }), 200).data;
  assert.equal(made.isDefault, true);
  assert.equal(expectStatus(await getDb(ctx.c, S.second.id), 200).data.isDefault, true);
  assert.equal(expectStatus(await getDb(ctx.c, S.defaultDb.id), 200).data.isDefault, false, 'the old default is no longer the default');
  const dbs = await listAll(ctx.c, '/v1/databases', { params: { query: { projectId: S.dbProject.id } } });
  assert.deepEqual(dbs.filter((d) => d.isDefault).map((d) => d.id), [S.second.id], 'exactly one default database');
  // demoting the default is refused, clearly
  const r = await patchDb(ctx.c, S.second.id, { isDefault: false });
  expectError(r, 409, { field: 'isDefault' });
  assert.equal(expectStatus(await getDb(ctx.c, S.second.id), 200).data.isDefault, true);
  // the new default is protected from a lone delete, the old one no longer is
  expectError(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: S.second.id } } }), 403);
  await waitReady(ctx.c, S.defaultDb.id);
  expectStatus(await call(ctx.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: S.defaultDb.id } } }), 204);
  // a wrong type is refused, not ignored
  expectError(await patchDb(ctx.c, S.second.id, { isDefault: 'yes' }), 400, { field: 'isDefault' });
});

ctx.it('PATCH /v1/projects/{id} settings are stored and returned (merged key by key; null removes a key)', async () => {
  const p = S.dbProject;
  const path = { params: { path: { id: p.id } } };
  let r = expectStatus(await call(ctx.c, 'PATCH', '/v1/projects/{id}', { ...path, body: { settings: { region: 'eu', flags: { a: true, list: [1, 2] } } } }), 200).data;
  assert.deepEqual(r.settings, { region: 'eu', flags: { a: true, list: [1, 2] } });
  let g = expectStatus(await call(ctx.c, 'GET', '/v1/projects/{id}', path), 200).data;
  assert.deepEqual(g.settings, { region: 'eu', flags: { a: true, list: [1, 2] } });
  r = expectStatus(await call(ctx.c, 'PATCH', '/v1/projects/{id}', { ...path, body: { name: 'renamed-with-settings', settings: { region: null, tier: 'gold' } } }), 200).data;
  assert.equal(r.name, 'renamed-with-settings');
  assert.deepEqual(r.settings, { flags: { a: true, list: [1, 2] }, tier: 'gold' });
  // a name-only PATCH keeps them; the list shows them too
  expectStatus(await call(ctx.c, 'PATCH', '/v1/projects/{id}', { ...path, body: { name: 'renamed-again' } }), 200);
  const listed = (await listAll(ctx.c, '/v1/projects')).find((x) => x.id === p.id);
  assert.deepEqual(listed.settings, { flags: { a: true, list: [1, 2] }, tier: 'gold' });
  // a project without settings shows {}
  assert.deepEqual(expectStatus(await call(ctx.c, 'GET', '/v1/projects/{id}', { params: { path: { id: S.branchProject.id } } }), 200).data.settings, {});
  // not an object, or too large: 422 naming settings, nothing stored
  expectError(await call(ctx.c, 'PATCH', '/v1/projects/{id}', { ...path, body: { settings: 'dark' } }), 422, { field: 'settings' });
  expectError(await call(ctx.c, 'PATCH', '/v1/projects/{id}', { ...path, body: { settings: { big: 'x'.repeat(9000) } } }), 422, { field: 'settings' });
  g = expectStatus(await call(ctx.c, 'GET', '/v1/projects/{id}', path), 200).data;
  assert.deepEqual(g.settings, { flags: { a: true, list: [1, 2] }, tier: 'gold' });
  assert.equal(g.name, 'renamed-again');
});

ctx.it('GET /v1/workspaces/{id}/subscription: the self-hosted plan, never blocked; another workspace is 404', async () => {
  const ws = (await listAll(ctx.c, '/v1/workspaces'))[0];
  S.workspaceA = ws.id;
  const sub = expectStatus(await call(ctx.c, 'GET', '/v1/workspaces/{id}/subscription', { params: { path: { id: ws.id } } }), 200).data;
  assert.equal(sub.planName, 'self-hosted');
  assert.equal(sub.usageBlocked, false);
  assert.ok(new URL(sub.upgradeUrl), 'upgradeUrl is a URL');
  expectError(await call(ctx.c, 'GET', '/v1/workspaces/{id}/subscription', { params: { path: { id: unknownLike(ws.id) } } }), 404);
  const other = await ctx.server.createWorkspace(uniq('ws-sub'));
  const foreign = await call(ctx.c, 'GET', '/v1/workspaces/{id}/subscription', { params: { path: { id: other } } });
  expectError(foreign, 404);
  const mine = client(ctx.server, await ctx.server.token({ workspace: other, name: 'sub' }));
  expectStatus(await call(mine, 'GET', '/v1/workspaces/{id}/subscription', { params: { path: { id: other } } }), 200);
});

ctx.it('lists that type their validation errors 422 answer 422 for a bad limit or cursor (branches, backups); others keep 400', async () => {
  const projectId = S.dbProject.id;
  for (const limit of [0, 101, 'abc']) {
    expectError(await call(ctx.c, 'GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId }, query: { limit } } }), 422, { field: 'limit', what: `branches limit=${limit}` });
    expectError(await call(ctx.c, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId: S.second.id }, query: { limit } } }), 422, { field: 'limit', what: `backups limit=${limit}` });
  }
  expectError(await call(ctx.c, 'GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId }, query: { cursor: 'not-a-cursor' } } }), 422, { field: 'cursor' });
  expectError(await call(ctx.c, 'GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId }, query: { cursor: unknownLike(S.staging.id) } } }), 422, { field: 'cursor' });
  expectError(await call(ctx.c, 'GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId }, query: { gitName: 'a', gitNameContains: 'b' } } }), 422, { field: 'gitName' });
  // the lists that type no 422 keep 400
  expectError(await call(ctx.c, 'GET', '/v1/databases', { params: { query: { limit: 0 } } }), 400, { field: 'limit' });
  expectError(await call(ctx.c, 'GET', '/v1/projects', { params: { query: { cursor: 'not-a-cursor' } } }), 400, { field: 'cursor' });
});

// ---- transfer ----

async function waitBackup(c, databaseId, { timeoutMs = 90000 } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = expectStatus(await call(c, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId } } }), 200);
    const done = r.data.filter((b) => b.status === 'completed');
    if (done.length) return done;
    if (Date.now() > end) assert.fail(`no completed backup of ${databaseId} within ${timeoutMs} ms: ${JSON.stringify(r.data)}`);
    await sleep(500);
  }
}

const transfer = (c, id, recipientAccessToken) => call(c, 'POST', '/v1/projects/{id}/transfer', { params: { path: { id } }, body: recipientAccessToken === undefined ? {} : { recipientAccessToken } });

ctx.it('transfer setup: a project in A with a branch, a ready database with data, an extra connection and a completed backup', async () => {
  S.wsB = await ctx.server.createWorkspace(uniq('ws-recipient'));
  S.tokenB = await ctx.server.token({ workspace: S.wsB, name: 'recipient' });
  S.cB = client(ctx.server, S.tokenB);
  const p = await newProject(ctx.c, { logicalId: uniq('claimable') });
  S.tp = p;
  S.tbranch = await newBranch(ctx.c, p.id, { gitName: 'preview-1' });
  await waitReady(ctx.c, p.database.id);
  S.tconn = expectStatus(await call(ctx.c, 'POST', '/v1/connections', { body: { databaseId: p.database.id, name: uniq('claimant') } }), 201).data;
  const direct = S.tconn.endpoints.direct.connectionString;
  await sql(direct, 'CREATE TABLE claimed (id int PRIMARY KEY, note text)');
  await sql(direct, "INSERT INTO claimed VALUES (1, 'before the transfer')");
  S.tbackups = await waitBackup(ctx.c, p.database.id);
});

ctx.it('transfer: a recipient token that is not valid is 409 (never 401), naming recipientAccessToken; nothing moves', async () => {
  const id = S.tp.id;
  for (const [what, tok] of [['unknown service token', 'pfs_' + 'x'.repeat(40)], ['a JWT that does not verify', 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln'], ['empty', ''], ['missing', undefined]]) {
    const r = await transfer(ctx.c, id, tok);
    expectError(r, 409, { field: 'recipientAccessToken', what });
  }
  // a revoked recipient token
  const gone = await ctx.server.token({ workspace: S.wsB, name: 'revoked-recipient' });
  const cGone = client(ctx.server, gone);
  const tokens = await listAll(cGone, '/v1/workspaces/{workspaceId}/service-tokens', { params: { path: { workspaceId: S.wsB } } });
  const mine = tokens.find((t) => t.name === 'revoked-recipient');
  expectStatus(await call(S.cB, 'DELETE', '/v1/workspaces/{workspaceId}/service-tokens/{serviceTokenId}', { params: { path: { workspaceId: S.wsB, serviceTokenId: mine.id } } }), 204);
  expectError(await transfer(ctx.c, id, gone), 409, { field: 'recipientAccessToken', what: 'revoked token' });
  // an unknown or foreign project: 404
  expectError(await transfer(ctx.c, unknownLike(id), S.tokenB), 404);
  const pB = await newProject(S.cB, { createDatabase: false });
  expectError(await transfer(ctx.c, pB.id, S.tokenB), 404);
  expectStatus(await call(ctx.c, 'GET', '/v1/projects/{id}', { params: { path: { id } } }), 200);
  expectError(await call(S.cB, 'GET', '/v1/projects/{id}', { params: { path: { id } } }), 404);
});

ctx.it('transfer with the recipient\'s service token: 204; project, branches, database, connections and backups are B\'s; A gets 404', async () => {
  const p = S.tp;
  expectStatus(await transfer(ctx.c, p.id, S.tokenB), 204);
  const A = ctx.c;
  const B = S.cB;
  // A: every id is now unknown
  expectError(await call(A, 'GET', '/v1/projects/{id}', { params: { path: { id: p.id } } }), 404);
  expectError(await getDb(A, p.database.id), 404);
  expectError(await call(A, 'GET', '/v1/connections/{id}', { params: { path: { id: S.tconn.id } } }), 404);
  expectError(await call(A, 'GET', '/v1/branches/{branchId}', branchPath(S.tbranch.id)), 404);
  expectError(await call(A, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId: p.database.id } } }), 404);
  expectError(await transfer(A, p.id, S.tokenB), 404);
  assert.ok(!(await listAll(A, '/v1/projects')).some((x) => x.id === p.id));
  assert.ok(!(await listAll(A, '/v1/databases')).some((x) => x.id === p.database.id));
  assert.ok(!(await listAll(A, '/v1/connections')).some((x) => x.id === S.tconn.id));
  // B: all of it
  const got = expectStatus(await call(B, 'GET', '/v1/projects/{id}', { params: { path: { id: p.id } } }), 200).data;
  assert.equal(got.workspace.id, S.wsB);
  assert.equal(got.logicalId, p.logicalId);
  const branches = expectStatus(await call(B, 'GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId: p.id } } }), 200).data;
  assert.deepEqual(branches.map((b) => [b.gitName, b.role]).sort(), [['main', 'production'], ['preview-1', 'preview']]);
  const db = expectStatus(await getDb(B, p.database.id), 200).data;
  assert.equal(db.status, 'ready');
  const conns = await listAll(B, '/v1/connections', { params: { query: { databaseId: p.database.id } } });
  assert.ok(conns.some((c) => c.id === S.tconn.id), 'the extra connection moved');
  assert.equal(conns.length, 2);
  const backups = expectStatus(await call(B, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId: p.database.id } } }), 200).data;
  for (const b of S.tbackups) assert.ok(backups.some((x) => x.id === b.id && x.status === 'completed'), `backup ${b.id} moved`);
  assert.ok((await listAll(B, '/v1/projects')).some((x) => x.id === p.id));
});

ctx.it('transfer: the database credentials keep working through the direct and the pooled endpoint', async () => {
  const { direct, pooled } = S.tconn.endpoints;
  assert.deepEqual(await sql(direct.connectionString, 'SELECT note FROM claimed WHERE id = 1'), [{ note: 'before the transfer' }]);
  await sql(direct.connectionString, "INSERT INTO claimed VALUES (2, 'after the transfer')");
  assert.ok(pooled?.connectionString, 'a pooled endpoint');
  const rows = await sql(pooled.connectionString, 'SELECT count(*)::int AS n FROM claimed');
  assert.deepEqual(rows, [{ n: 2 }]);
  const out = await psql(direct.connectionString, 'SELECT note FROM claimed ORDER BY id');
  assert.match(String(out), /after the transfer/);
  assert.equal(await psql(pooled.connectionString, 'SELECT count(*) FROM claimed'), '2');
  // and the new owner manages them: a rotate through B
  const rot = expectStatus(await call(S.cB, 'POST', '/v1/connections/{id}/rotate', { params: { path: { id: S.tconn.id } } }), 200).data;
  const fresh = rot.endpoints.direct.connectionString;
  assert.deepEqual(await sql(fresh, 'SELECT count(*)::int AS n FROM claimed'), [{ n: 2 }]);
});

ctx.it('transfer with an OAuth access token of the receiving workspace: 204, and the credentials still work', async () => {
  const REDIRECT = 'http://127.0.0.1:9/callback';
  const user = await createUser(ctx.server, `claimant-${Date.now().toString(36)}@example.com`, 'claimant-password-1');
  const clientId = await createClient(ctx.server, 'Claim Tool', REDIRECT);
  const tokens = await formLogin(ctx.server, { clientId, redirectUri: REDIRECT, user });
  assert.equal(tokens.workspaceId, user.workspaceId);
  expectStatus(await transfer(S.cB, S.tp.id, tokens.accessToken), 204);
  const C = client(ctx.server, tokens.accessToken);
  const got = expectStatus(await call(C, 'GET', '/v1/projects/{id}', { params: { path: { id: S.tp.id } } }), 200).data;
  assert.equal(got.workspace.id, user.workspaceId);
  expectError(await call(S.cB, 'GET', '/v1/projects/{id}', { params: { path: { id: S.tp.id } } }), 404);
  const conn = expectStatus(await call(C, 'POST', '/v1/connections', { body: { databaseId: S.tp.database.id, name: 'claimed-by-oauth' } }), 201).data;
  assert.deepEqual(await sql(conn.endpoints.pooled.connectionString, 'SELECT count(*)::int AS n FROM claimed'), [{ n: 2 }]);
  // the recipient may also be the project's own workspace: nothing moves
  expectStatus(await transfer(C, S.tp.id, tokens.accessToken), 204);
  expectStatus(await call(C, 'GET', '/v1/projects/{id}', { params: { path: { id: S.tp.id } } }), 200);
});

ctx.it('transfer: a recipient that already has a project with the same logicalId is 409; nothing moves', async () => {
  const logicalId = uniq('taken');
  const mine = await newProject(ctx.c, { logicalId, createDatabase: false });
  await newProject(S.cB, { logicalId, createDatabase: false });
  expectError(await transfer(ctx.c, mine.id, S.tokenB), 409, { field: 'logicalId' });
  expectStatus(await call(ctx.c, 'GET', '/v1/projects/{id}', { params: { path: { id: mine.id } } }), 200);
});

ctx.itShutsDownCleanly();
