// Bad input over raw HTTP (what the SDK cannot send) and through the SDK: a clear error in
// the envelope with a hint naming the field, nothing half-created, the server keeps serving.
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { call, raw, expectStatus, expectError, waitReady, listAll, unknownLike, uniq } from './lib/api.mjs';
import { operation, expectShape } from './lib/schemas.mjs';
import { instanceDirs } from './lib/procs.mjs';

const ctx = useServer('badinput');
const S = {};
const MiB = 1024 * 1024;

// The status a validation failure must have for an operation: the one the contract declares
// (400 or 422); either when it declares neither.
function invalidStatus(opId) {
  const declared = [400, 422].filter((s) => operation(opId).statuses[String(s)]);
  return declared.length ? declared : [400, 422];
}

const R = (method, path, opts) => raw(ctx.server, method, path, opts);

async function snapshot() {
  const c = ctx.c;
  const pick = (xs) => xs.map((x) => ({ id: x.id, name: x.name ?? x.gitName })).sort((a, b) => a.id.localeCompare(b.id));
  return {
    projects: pick(await listAll(c, '/v1/projects')),
    databases: pick(await listAll(c, '/v1/databases')),
    connections: pick(await listAll(c, '/v1/connections')),
    branches: pick(await listAll(c, '/v1/projects/{projectId}/branches', { params: { path: { projectId: S.project.id } } })),
    workspaces: pick(await listAll(c, '/v1/workspaces')),
    instanceDirs: instanceDirs(ctx.server.home).sort(),
    postmasters: ctx.server.postmasters().length,
  };
}

ctx.it('setup: a project with a ready database, a connection, a branch; snapshot of everything', async () => {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('bad') } }), 201).data;
  S.project = p;
  S.db = await waitReady(ctx.c, p.database.id);
  S.conn = expectStatus(await call(ctx.c, 'POST', '/v1/connections', { body: { databaseId: S.db.id, name: uniq('c') } }), 201).data;
  S.branch = expectStatus(await call(ctx.c, 'POST', '/v1/projects/{projectId}/branches', { params: { path: { projectId: p.id } }, body: { gitName: 'bad-input' } }), 201).data;
  S.before = await snapshot();
});

ctx.it('malformed JSON -> 400 in the envelope', async () => {
  const targets = [
    ['POST', '/v1/databases'],
    ['POST', '/v1/projects'],
    ['POST', `/v1/projects/${S.project.id}/databases`],
    ['PATCH', `/v1/projects/${S.project.id}`],
    ['PATCH', `/v1/databases/${S.db.id}`],
    ['POST', '/v1/connections'],
    ['POST', `/v1/databases/${S.db.id}/connections`],
    ['POST', `/v1/projects/${S.project.id}/branches`],
    ['PATCH', `/v1/branches/${S.branch.id}`],
  ];
  for (const [m, p] of targets) {
    for (const body of ['{"projectId": ', '{', 'not json', '{"name": "x",}', '\u0000']) {
      const r = await R(m, p, { body });
      expectError(r, 400, { what: `${m} ${p} body ${JSON.stringify(body)}` });
    }
  }
});

ctx.it('wrong types and missing required fields -> 400/422 (per the contract) with a hint naming the field', async () => {
  const P = S.project.id;
  const D = S.db.id;
  const cases = [
    ['POST', '/v1/databases', 'postV1Databases', { projectId: P, name: 5 }, 'name'],
    ['POST', '/v1/databases', 'postV1Databases', { projectId: 5 }, 'projectId'],
    ['POST', '/v1/databases', 'postV1Databases', {}, 'projectId'],
    ['POST', '/v1/databases', 'postV1Databases', { projectId: P, isDefault: 'yes' }, 'isDefault'],
    ['POST', '/v1/databases', 'postV1Databases', { projectId: P, region: 5 }, 'region'],
    ['POST', '/v1/databases', 'postV1Databases', { projectId: P, logicalId: 7 }, 'logicalId'],
    ['POST', '/v1/databases', 'postV1Databases', { projectId: P, branchId: null }, 'branchId'],
    ['POST', '/v1/databases', 'postV1Databases', [], null],
    ['POST', `/v1/projects/${P}/databases`, 'postV1ProjectsByProjectIdDatabases', { name: 5 }, 'name'],
    ['POST', '/v1/projects', 'postV1Projects', { name: 5 }, 'name'],
    ['POST', '/v1/projects', 'postV1Projects', { createDatabase: 'yes' }, 'createDatabase'],
    ['PATCH', `/v1/projects/${P}`, 'patchV1ProjectsById', { name: 5 }, 'name'],
    ['PATCH', `/v1/databases/${D}`, 'patchV1DatabasesByDatabaseId', { name: 5 }, 'name'],
    ['POST', '/v1/connections', 'postV1Connections', { databaseId: D, name: 5 }, 'name'],
    ['POST', '/v1/connections', 'postV1Connections', { name: 'x' }, 'databaseId'],
    ['POST', '/v1/connections', 'postV1Connections', { databaseId: 5, name: 'x' }, 'databaseId'],
    ['POST', `/v1/databases/${D}/connections`, 'postV1DatabasesByDatabaseIdConnections', { name: 5 }, 'name'],
    ['POST', `/v1/projects/${P}/branches`, 'postV1ProjectsByProjectIdBranches', { gitName: 5 }, 'gitName'],
    ['POST', `/v1/projects/${P}/branches`, 'postV1ProjectsByProjectIdBranches', {}, 'gitName'],
    ['PATCH', `/v1/branches/${S.branch.id}`, 'patchV1BranchesByBranchId', { isDefault: 'yes' }, 'isDefault'],
  ];
  for (const [m, p, opId, json, field] of cases) {
    const r = await R(m, p, { json });
    expectError(r, invalidStatus(opId), { field: field ?? undefined, what: `${m} ${p} ${JSON.stringify(json)}` });
  }
});

ctx.it('unknown field values: region, source type -> 400 with a hint; sources naming what does not exist -> 404', async () => {
  const P = S.project.id;
  expectError(await R('POST', '/v1/databases', { json: { projectId: P, region: 'mars-1' } }), 400, { field: 'region', what: 'region mars-1' });
  expectError(await R('POST', `/v1/projects/${P}/databases`, { json: { region: 'mars-1' } }), 400, { field: 'region', what: 'region mars-1 (project databases)' });
  const pr = await R('POST', '/v1/projects', { json: { name: uniq('x'), region: 'mars-1' } });
  expectError(pr, invalidStatus('postV1Projects'), { field: 'region', what: 'POST /v1/projects region mars-1' });
  for (const source of [{ type: 'bogus' }, { type: 5 }, 'empty', {}, { type: 'database' }, { type: 'backup', databaseId: S.db.id }]) {
    const r = await R('POST', '/v1/databases', { json: { projectId: P, source } });
    expectError(r, 400, { field: 'source', what: `source ${JSON.stringify(source)}` });
  }
  // well-formed sources that name what does not exist: 404 naming the source, nothing made
  const missing = [
    ['POST', '/v1/databases', { projectId: P, source: { type: 'backup', databaseId: S.db.id, backupId: 'bkp_doesnotexist' } }],
    ['POST', '/v1/databases', { projectId: P, source: { type: 'backup', databaseId: 'db_doesnotexist', backupId: 'bkp_doesnotexist' } }],
    ['POST', '/v1/databases', { projectId: P, source: { type: 'database', databaseId: 'db_doesnotexist' } }],
    ['POST', `/v1/projects/${P}/databases`, { source: { type: 'database', databaseId: 'db_doesnotexist' } }],
    ['POST', `/v1/projects/${P}/databases`, { fromDatabase: { id: 'db_doesnotexist' } }],
  ];
  for (const [m, p, json] of missing) {
    const r = await R(m, p, { json });
    const e = expectError(r, 404, { what: `${m} ${p} ${JSON.stringify(json)}` });
    assert.ok(/source|fromDatabase|backup|database/i.test(`${e.hint ?? ''} ${e.message}`), `${JSON.stringify(json)}: the error should name the source: ${JSON.stringify(e)}`);
  }
});

ctx.it('names over 255 characters -> 400/422 with a hint naming the field; 255 is accepted', async () => {
  const long = 'n'.repeat(256);
  const P = S.project.id;
  const cases = [
    ['POST', '/v1/databases', 'postV1Databases', { projectId: P, name: long }, 'name'],
    ['POST', `/v1/projects/${P}/databases`, 'postV1ProjectsByProjectIdDatabases', { name: long }, 'name'],
    ['POST', '/v1/projects', 'postV1Projects', { name: long }, 'name'],
    ['PATCH', `/v1/projects/${P}`, 'patchV1ProjectsById', { name: long }, 'name'],
    ['PATCH', `/v1/databases/${S.db.id}`, 'patchV1DatabasesByDatabaseId', { name: long }, 'name'],
    ['POST', '/v1/connections', 'postV1Connections', { databaseId: S.db.id, name: long }, 'name'],
    ['POST', `/v1/projects/${P}/branches`, 'postV1ProjectsByProjectIdBranches', { gitName: 'g'.repeat(256) }, 'gitName'],
    ['POST', '/v1/databases', 'postV1Databases', { projectId: P, name: 'n'.repeat(MiB - 200) }, 'name'],
  ];
  for (const [m, p, opId, json, field] of cases) {
    const r = await R(m, p, { json });
    expectError(r, invalidStatus(opId), { field, what: `${m} ${p} ${field} of ${(json.name ?? json.gitName).length} chars` });
  }
  const ok = await call(ctx.c, 'PATCH', '/v1/projects/{id}', { params: { path: { id: P } }, body: { name: 'n'.repeat(255) } });
  assert.equal(expectStatus(ok, 200, 'PATCH project name of 255 chars').data.name.length, 255);
  expectStatus(await call(ctx.c, 'PATCH', '/v1/projects/{id}', { params: { path: { id: P } }, body: { name: S.project.name } }), 200);
});

ctx.it('bodies over 1 MiB -> 413 (with Content-Length and chunked)', async () => {
  const P = S.project.id;
  const big = (extra) => JSON.stringify({ ...extra, name: 'x', pad: 'a'.repeat(MiB + 16) });
  const targets = [
    ['POST', '/v1/databases', { projectId: P }],
    ['POST', '/v1/projects', {}],
    ['POST', `/v1/projects/${P}/databases`, {}],
    ['PATCH', `/v1/projects/${P}`, {}],
    ['PATCH', `/v1/databases/${S.db.id}`, {}],
    ['POST', '/v1/connections', { databaseId: S.db.id }],
  ];
  for (const [m, p, extra] of targets) {
    let r;
    try {
      r = await R(m, p, { body: big(extra) });
    } catch (e) {
      assert.fail(`${m} ${p} with a ${MiB + 16}-byte body: no HTTP response (${e.cause?.code ?? e.message}); expected 413`);
    }
    expectError(r, 413, { what: `${m} ${p} > 1 MiB` });
  }
  // chunked: no Content-Length, the limit must still hold
  const chunk = new TextEncoder().encode('a'.repeat(64 * 1024));
  const stream = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(`{"projectId":"${P}","pad":"`));
      for (let i = 0; i < 17; i++) controller.enqueue(chunk);
      controller.enqueue(new TextEncoder().encode('"}'));
      controller.close();
    },
  });
  let res;
  try {
    res = await fetch(`${ctx.server.baseUrl}/v1/databases`, {
      method: 'POST', body: stream, duplex: 'half',
      headers: { authorization: `Bearer ${ctx.server.adminToken}`, 'content-type': 'application/json' },
    });
  } catch (e) {
    assert.fail(`chunked POST /v1/databases > 1 MiB: no HTTP response (${e.cause?.code ?? e.message}); expected 413`);
  }
  const text = await res.text();
  assert.equal(res.status, 413, `chunked > 1 MiB: ${res.status} ${text.slice(0, 300)}`);
  const body = expectShape('postV1Databases', 413, JSON.parse(text), { what: 'chunked POST /v1/databases' });
  expectError({ status: res.status, body }, 413);
});

ctx.it('unknown and malformed ids -> 404', async () => {
  const ids = {
    projects: S.project.id, databases: S.db.id, connections: S.conn.id, branches: S.branch.id,
  };
  const malformed = ['x', 'not-an-id', "'; DROP TABLE projects; --", 'a'.repeat(300), '%00', '%FF%FE', '🙂'];
  for (const [coll, real] of Object.entries(ids)) {
    for (const id of [unknownLike(real), ...malformed]) {
      const seg = /%/.test(id) ? id : encodeURIComponent(id);
      for (const m of ['GET', 'PATCH', 'DELETE']) {
        if (coll === 'connections' && m === 'PATCH') continue;
        const json = m === 'PATCH' ? (coll === 'branches' ? { isDefault: true } : { name: 'renamed' }) : undefined;
        const r = await R(m, `/v1/${coll}/${seg}`, { json });
        expectError(r, 404, { what: `${m} /v1/${coll}/${id.slice(0, 40)}` });
      }
    }
  }
  const U = unknownLike;
  const nested = [
    ['POST', `/v1/connections/${U(S.conn.id)}/rotate`, undefined],
    ['GET', `/v1/projects/${U(S.project.id)}/branches`, undefined],
    ['POST', `/v1/projects/${U(S.project.id)}/branches`, { gitName: 'x' }],
    ['GET', `/v1/projects/${U(S.project.id)}/databases`, undefined],
    ['POST', `/v1/projects/${U(S.project.id)}/databases`, { name: 'x' }],
    ['POST', `/v1/databases/${U(S.db.id)}/connections`, { name: 'x' }],
    ['POST', '/v1/databases', { projectId: U(S.project.id) }],
    ['POST', '/v1/connections', { databaseId: U(S.db.id), name: 'x' }],
    ['GET', `/v1/workspaces/${U(S.before.workspaces[0].id)}`, undefined],
  ];
  for (const [m, p, json] of nested) expectError(await R(m, p, { json }), 404, { what: `${m} ${p}` });
});

ctx.it('missing or wrong token -> 401 (before any 404), for reads and writes', async () => {
  const valid = ctx.server.adminToken;
  const tokens = [
    ['no Authorization', null, {}],
    ['wrong token', 'definitely-not-a-token', {}],
    ['valid token + 1 char', `${valid}x`, {}],
    ['valid token truncated', valid.slice(0, -1), {}],
    ['empty bearer', null, { authorization: 'Bearer ' }],
    ['Basic scheme', null, { authorization: `Basic ${Buffer.from(`x:${valid}`).toString('base64')}` }],
    ['token without scheme', null, { authorization: valid }],
  ];
  const reqs = [
    ['GET', '/v1/projects'],
    ['GET', '/v1/workspaces'],
    ['GET', `/v1/databases/${S.db.id}`],
    ['GET', `/v1/databases/${unknownLike(S.db.id)}`],
    ['POST', '/v1/databases', { projectId: S.project.id }],
    ['DELETE', `/v1/databases/${S.db.id}`],
    ['DELETE', `/v1/connections/${S.conn.id}`],
    ['POST', `/v1/connections/${S.conn.id}/rotate`],
    ['PATCH', `/v1/projects/${S.project.id}`, { name: 'hijack' }],
  ];
  for (const [label, token, headers] of tokens) {
    for (const [m, p, json] of reqs) {
      const r = await R(m, p, { token, headers, json });
      expectError(r, 401, { what: `${label}: ${m} ${p}` });
    }
  }
});

ctx.it('routes outside the scope and unknown routes -> 404 in the envelope', async () => {
  for (const [m, p] of [['GET', '/v1/apps'], ['POST', '/v1/services'], ['GET', '/v1/buckets'], ['GET', '/v1/builds'], ['GET', '/v1/nope'], ['GET', '/v2/projects'], ['GET', '/v1/domains/x']]) {
    const r = await R(m, p, { json: m === 'POST' ? {} : undefined });
    expectError(r, 404, { what: `${m} ${p}` });
  }
  const put = await R('PUT', '/v1/projects', { json: {} });
  expectError(put, [404, 405], { what: 'PUT /v1/projects' });
});

ctx.it('after all that: the server serves, nothing was created, changed or lost', async () => {
  const h = await fetch(`${ctx.server.baseUrl}/healthz`);
  assert.equal(h.status, 200);
  const after = await snapshot();
  assert.deepEqual(after, S.before);
  const d = expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: S.db.id } } }), 200).data;
  assert.equal(d.status, 'ready');
  // a good request still works
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('after'), createDatabase: false } }), 201).data;
  expectStatus(await call(ctx.c, 'DELETE', '/v1/projects/{id}', { params: { path: { id: p.id } } }), 204);
});

ctx.itShutsDownCleanly();
