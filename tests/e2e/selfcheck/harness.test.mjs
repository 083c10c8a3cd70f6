// Self-check of the test machinery, no pgfleet needed: the generated schemas accept correct
// samples and reject wrong ones, routes resolve, the SDK wiring sends the token, helpers work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { expectShape, opForPath, opForTemplate } from '../lib/schemas.mjs';
import { call, unknownLike, expectError } from '../lib/api.mjs';
import { createManagementApiClient } from '@prisma/management-api-sdk';
import { freePortWindow, portBindable } from '../lib/procs.mjs';

const ws = { id: 'ws_1', type: 'workspace', url: 'http://127.0.0.1:1/v1/workspaces/ws_1', name: 'main', createdAt: '2025-01-01T00:00:00.000Z' };
const conn = {
  id: 'con_1', type: 'connection', url: 'http://127.0.0.1:1/v1/connections/con_1', name: 'first', createdAt: '2025-01-01T00:00:00Z', kind: 'postgres',
  endpoints: { direct: { host: '127.0.0.1', port: 20001, connectionString: 'postgres://u:p@127.0.0.1:20001/postgres' } },
  directConnection: { host: '127.0.0.1:20001', user: 'u', pass: 'p' },
  database: { id: 'db_1', url: 'http://127.0.0.1:1/v1/databases/db_1', name: 'db' },
};
const db = {
  id: 'db_1', type: 'database', url: 'http://127.0.0.1:1/v1/databases/db_1', name: 'db', status: 'provisioning', createdAt: '2025-01-01T00:00:00Z',
  isDefault: true, defaultConnectionId: 'con_1', connections: [conn], region: { id: 'us-east-1', name: 'US East (N. Virginia)' },
  source: { type: 'empty' }, branchId: 'br_1', logicalId: null, apiKeys: [], connectionString: null, directConnection: null,
};
const project = { id: 'prj_1', type: 'project', url: 'http://127.0.0.1:1/v1/projects/prj_1', name: 'p', logicalId: null, createdAt: '2025-01-01T00:00:00Z', defaultRegion: 'us-east-1', workspace: { id: 'ws_1', url: 'http://127.0.0.1:1/v1/workspaces/ws_1', name: 'main' } };

test('schemas accept correct samples', () => {
  expectShape('getV1WorkspacesById', 200, { data: ws });
  expectShape('getV1Workspaces', 200, { data: [ws], pagination: { nextCursor: null, hasMore: false } });
  expectShape('postV1Projects', 201, { data: { ...project, database: null } });
  expectShape('postV1Projects', 201, { data: { ...project, database: db } });
  expectShape('getV1ProjectsById', 404, { error: { code: 'not_found', message: 'Project not found' } });
  expectShape('postV1Databases', 400, { error: { code: 'invalid', message: 'bad', hint: 'name must be a string' } });
  expectShape('deleteV1DatabasesByDatabaseId', 204, undefined);
});

test('schemas reject wrong samples', () => {
  const bad = [
    ['getV1WorkspacesById', 200, { data: { ...ws, createdAt: undefined } }, /createdAt/],
    ['getV1WorkspacesById', 200, { data: { ...ws, type: 'project' } }, /const|type/],
    ['getV1WorkspacesById', 200, { data: { ...ws, name: 5 } }, /string/],
    ['getV1WorkspacesById', 200, { data: { ...ws, createdAt: 'yesterday' } }, /date-time/],
    ['getV1WorkspacesById', 200, { data: { ...ws, surprise: 1 } }, /additional/],
    ['getV1WorkspacesById', 200, { ws }, /data/],
    ['postV1Projects', 201, { data: { ...project, database: { ...db, status: 'recovering' } } }, /allowed values/],
    ['postV1Projects', 201, { data: project }, /database/],
    ['getV1ProjectsById', 404, { error: { message: 'x' } }, /code/],
    ['getV1ProjectsById', 404, { message: 'x' }, /error/],
    ['getV1ProjectsById', 201, { data: project }, /not declared/],
    ['deleteV1DatabasesByDatabaseId', 204, { data: 1 }, /no body/],
  ];
  for (const [op, st, body, re] of bad) {
    assert.throws(() => expectShape(op, st, JSON.parse(JSON.stringify(body))), (e) => re.test(e.message), `${op} ${st} should reject ${JSON.stringify(body).slice(0, 80)}`);
  }
  // undeclared error statuses are checked against the envelope
  expectShape('getV1Databases', 400, { error: { code: 'invalid', message: 'limit', hint: 'limit must be 1..100' } });
  assert.throws(() => expectShape('getV1Databases', 400, { oops: 1 }));
});

test('routes resolve to operations', () => {
  assert.equal(opForPath('GET', '/v1/databases/db_1'), 'getV1DatabasesByDatabaseId');
  assert.equal(opForPath('GET', '/v1/databases'), 'getV1Databases');
  assert.equal(opForPath('POST', '/v1/databases/db_1/connections'), 'postV1DatabasesByDatabaseIdConnections');
  assert.equal(opForPath('POST', '/v1/connections/c/rotate'), 'postV1ConnectionsByIdRotate');
  assert.equal(opForPath('GET', '/v1/regions/postgres'), 'getV1RegionsPostgres');
  assert.equal(opForPath('GET', '/v1/nope'), undefined);
  assert.equal(opForTemplate('PATCH', '/v1/branches/{branchId}'), 'patchV1BranchesByBranchId');
});

test('unknownLike keeps the shape and changes the id', () => {
  for (const id of ['db_01HZX3K9ABCDEF', 'cmd1a2b3c4d5e6f7g8h9', 'prj-1234']) {
    const u = unknownLike(id);
    assert.notEqual(u, id);
    assert.equal(u.length, id.length);
    assert.equal(u.replace(/[0-9a-zA-Z]/g, ''), id.replace(/[0-9a-zA-Z]/g, ''));
  }
});

test('SDK wiring: call() sends the bearer token and validates what comes back', async () => {
  const seen = [];
  const srv = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
    res.setHeader('content-type', 'application/json');
    if (req.url === '/v1/workspaces') return res.end(JSON.stringify({ data: [ws], pagination: { nextCursor: null, hasMore: false } }));
    if (req.url === '/v1/projects/prj_1') return res.end(JSON.stringify({ data: { ...project, workspace: undefined } }));
    res.statusCode = 404;
    res.end(JSON.stringify({ error: { code: 'not_found', message: 'no', hint: 'check projectId' } }));
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const c = createManagementApiClient({ token: 'tok123', baseUrl: `http://127.0.0.1:${srv.address().port}` });
    const r = await call(c, 'GET', '/v1/workspaces', {});
    assert.equal(r.status, 200);
    await assert.rejects(call(c, 'GET', '/v1/projects/{id}', { params: { path: { id: 'prj_1' } } }), /workspace/);
    const nf = await call(c, 'GET', '/v1/projects/{id}', { params: { path: { id: 'prj_2' } } });
    expectError(nf, 404, { field: 'projectId' });
    assert.ok(seen.every((s) => s.endsWith('Bearer tok123')), seen.join('\n'));
  } finally {
    srv.close();
  }
});

test('port window helper: 100 bindable ports within 20000-40000', async () => {
  const w = await freePortWindow(100);
  assert.equal(w.hi - w.lo, 99);
  assert.ok(w.lo >= 20000 && w.hi < 40000);
  assert.ok(await portBindable(w.lo));
});
