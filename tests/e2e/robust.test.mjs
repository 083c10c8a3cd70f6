// Robustness of reads and ops: a list cursor holding another workspace's id behaves exactly
// like an unknown id (every paged list); lists never answer 404 while another client deletes
// databases; a delete while a backup of that database runs answers promptly and leaves no
// stanza, pgBackRest process or file of the database behind.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { useServer } from './lib/fixture.mjs';
import { client, call, raw, expectStatus, waitReady, unknownLike, uniq } from './lib/api.mjs';
import { procsMatching, until, sleep, instanceOf } from './lib/procs.mjs';

// lists are hammered by 4 tight loops on one token below: no per-credential rate limit here
// (rate-limit.test.mjs tests it)
const ctx = useServer('robust', { extraArgs: ['--spares', '4', '--rate-limit', '0'] });
const A = {};
const B = {};
const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';

async function populate(X, c) {
  X.c = c;
  X.project = expectStatus(await call(c, 'POST', '/v1/projects', { body: { name: uniq('robust') } }), 201).data;
  X.db = X.project.database;
  X.workspaceId = X.project.workspace.id;
  X.conn = expectStatus(await call(c, 'POST', '/v1/connections', { body: { databaseId: X.db.id, name: uniq('c') } }), 201).data;
  X.branch = expectStatus(await call(c, 'GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId: X.project.id } } }), 200).data[0];
  await waitReady(c, X.db.id, { timeoutMs: 60000 });
}

ctx.it('setup: workspace B with its own token; A and B each get a project, database, connection', async () => {
  const wsB = await ctx.server.createWorkspace(uniq('ws-b'));
  const tokenB = await ctx.server.token({ workspace: wsB, name: 'e2e-b' });
  await populate(A, ctx.c);
  await populate(B, client(ctx.server, tokenB));
  assert.notEqual(A.workspaceId, B.workspaceId);
  const toks = expectStatus(await call(B.c, 'GET', '/v1/workspaces/{workspaceId}/service-tokens', { params: { path: { workspaceId: B.workspaceId } } }), 200).data;
  B.tokenId = toks[0]?.id;
  assert.ok(B.tokenId, 'B has a service token');
}, { timeout: 180000 });

// The body of an answer without what differs per request.
const comparable = (r) => JSON.stringify(r.body, (k, v) => (k === 'requestId' ? undefined : v));

ctx.it('cursor probing: a cursor holding another workspace\'s id answers exactly like an unknown id, on every paged list', async () => {
  const lists = [
    ['/v1/projects', {}, () => B.project.id],
    ['/v1/databases', {}, () => B.db.id],
    ['/v1/databases', { query: { projectId: A.project.id } }, () => B.db.id],
    ['/v1/projects/{projectId}/databases', { path: { projectId: A.project.id } }, () => B.db.id],
    ['/v1/connections', {}, () => B.conn.id],
    ['/v1/connections', { query: { databaseId: A.db.id } }, () => B.conn.id],
    ['/v1/databases/{databaseId}/connections', { path: { databaseId: A.db.id } }, () => B.conn.id],
    ['/v1/projects/{projectId}/branches', { path: { projectId: A.project.id } }, () => B.branch.id],
    ['/v1/workspaces', {}, () => B.workspaceId],
    ['/v1/workspaces/{workspaceId}/service-tokens', { path: { workspaceId: A.workspaceId } }, () => B.tokenId],
  ];
  const diffs = [];
  for (const [template, params, foreignId] of lists) {
    const f = foreignId();
    const withCursor = (cursor) => ({ params: { ...params, query: { ...(params.query || {}), limit: 10, cursor } } });
    const foreign = await call(A.c, 'GET', template, withCursor(f));
    const unknown = await call(A.c, 'GET', template, withCursor(unknownLike(f)));
    if (foreign.status !== unknown.status || comparable(foreign) !== comparable(unknown)) {
      diffs.push(`${template}${params.query ? '?' + new URLSearchParams(params.query) : ''}: foreign cursor ${foreign.status} ${comparable(foreign).slice(0, 200)} vs unknown ${unknown.status} ${comparable(unknown).slice(0, 200)}`);
    }
  }
  assert.deepEqual(diffs, [], 'lists where a foreign cursor differs from an unknown one');
});

// A page reads its rows' connections and projects once for the page: every item must
// still be exactly the database's own GET (its connections, oldest first, and its project).
ctx.it('a list page item equals the single GET of that database, across projects and connections', async () => {
  const p2 = expectStatus(await call(A.c, 'POST', '/v1/projects', { body: { name: uniq('robust-p2') } }), 201).data;
  const extra = expectStatus(await call(A.c, 'POST', '/v1/connections', { body: { databaseId: p2.database.id, name: uniq('c') } }), 201).data;
  await waitReady(A.c, p2.database.id, { timeoutMs: 60000 });
  const page = expectStatus(await call(A.c, 'GET', '/v1/databases', { params: { query: { limit: 100 } } }), 200).data;
  const byId = new Map(page.map((d) => [d.id, d]));
  assert.ok(byId.has(A.db.id) && byId.has(p2.database.id), 'both projects\' databases are listed');
  assert.equal(byId.get(p2.database.id).connections.length, 2, 'the second database lists its two connections');
  assert.ok(byId.get(p2.database.id).connections.some((c) => c.id === extra.id));
  for (const d of page) {
    const one = expectStatus(await call(A.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: d.id } } }), 200).data;
    assert.deepEqual(d, one, `list item ${d.id} differs from its GET`);
  }
  // the nested list of a project: the same items
  const nested = expectStatus(await call(A.c, 'GET', '/v1/projects/{projectId}/databases', { params: { path: { projectId: p2.id } } }), 200).data;
  assert.deepEqual(nested, [byId.get(p2.database.id)]);
});

ctx.it('lists during concurrent deletes never answer 404 (or any error)', async () => {
  const ids = [];
  const made = await Promise.all(Array.from({ length: 8 }, (_, i) => call(A.c, 'POST', '/v1/databases', { body: { projectId: A.project.id, name: `victim-${i}` } })));
  for (const r of made) ids.push(expectStatus(r, 201, 'POST /v1/databases').data.id);
  for (const id of ids) await waitReady(A.c, id, { timeoutMs: 90000 });
  // a few more connections each, so the connection list has rows of every victim
  await Promise.all(ids.map((databaseId) => call(A.c, 'POST', '/v1/connections', { body: { databaseId, name: uniq('v') } })));
  let stop = false;
  const bad = [];
  let lists = 0;
  const lister = async () => {
    while (!stop) {
      for (const [t, init] of [['/v1/connections', {}], ['/v1/databases', {}], ['/v1/projects/{projectId}/databases', { params: { path: { projectId: A.project.id } } }], ['/v1/projects', {}]]) {
        const r = await call(A.c, 'GET', t, init);
        lists++;
        if (r.status !== 200) bad.push(`${t} -> ${r.status} ${JSON.stringify(r.body?.error)}`);
      }
    }
  };
  const listers = Array.from({ length: 4 }, lister);
  const dels = await Promise.all(ids.map(async (databaseId) => {
    await sleep(Math.random() * 300);
    return call(A.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId } } });
  }));
  await sleep(500);
  stop = true;
  await Promise.all(listers);
  for (const r of dels) expectStatus(r, 204, 'DELETE /v1/databases/{id}');
  assert.ok(lists > 20, `lists ran during the deletes (${lists})`);
  assert.deepEqual(bad, [], 'lists that failed while databases were deleted');
}, { timeout: 240000 });

function pgbench(args, timeoutMs = 180000) {
  return new Promise((resolve, reject) => {
    execFile(PGBENCH, args, { timeout: timeoutMs, env: { ...process.env, PGCONNECT_TIMEOUT: '10' } }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`pgbench failed: ${stderr || err.message}`));
      resolve(stdout);
    });
  });
}

// Every path under root whose name contains s.
function pathsNaming(root, s) {
  const out = [];
  const walk = (dir) => {
    let ents = [];
    try { ents = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const d of ents) {
      const p = path.join(dir, d.name);
      if (d.name.includes(s)) out.push(path.relative(root, p));
      if (d.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

const backupProcs = (id) => procsMatching(`--stanza=${id}`).filter((p) => p.argv.some((a) => /pgbackrest/.test(a)));

ctx.it('a delete while a backup of the database runs answers promptly; no stanza, process or file is left', async () => {
  const d = expectStatus(await call(A.c, 'POST', '/v1/databases', { body: { projectId: A.project.id, name: 'busy' } }), 201).data;
  await waitReady(A.c, d.id, { timeoutMs: 90000 });
  const cs = d.connections[0].endpoints.direct.connectionString;
  // let the first backup finish, then load enough data that a full backup takes a while
  await until(async () => {
    const l = expectStatus(await call(A.c, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId: d.id } } }), 200);
    return l.data.length && l.data.every((b) => b.status !== 'running');
  }, { timeoutMs: 90000 });
  await pgbench(['-i', '-q', '-s', '12', cs]);
  const inst = instanceOf(ctx.server.home, d.id); // names the stanza, files and processes
  let caught = false;
  for (let attempt = 0; attempt < 3 && !caught; attempt++) {
    const r = await raw(ctx.server, 'POST', `/v1/databases/${d.id}/backups`, { json: { type: 'full' } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    caught = await until(() => backupProcs(inst).some((p) => p.argv.includes('backup')), { timeoutMs: 30000, intervalMs: 20 });
  }
  assert.ok(caught, 'a pgBackRest backup of the database was seen running');
  const t0 = Date.now();
  const del = await call(A.c, 'DELETE', '/v1/databases/{databaseId}', { params: { path: { databaseId: d.id } } });
  const ms = Date.now() - t0;
  expectStatus(del, 204, 'DELETE during a backup');
  assert.ok(ms < 15000, `the delete answered in ${ms} ms (a backup must not hold it)`);
  expectStatus(await call(A.c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId: d.id } } }), 404);
  const left = await until(() => backupProcs(inst).length === 0, { timeoutMs: 10000 });
  assert.ok(left, `pgBackRest processes of the deleted database: ${backupProcs(inst).map((p) => p.argv.join(' ')).join('; ')}`);
  for (const id of [d.id, inst]) {
    assert.deepEqual(pathsNaming(ctx.server.home, id), [], `files naming ${id} (the deleted database) left in the home`);
    assert.deepEqual(procsMatching(id).map((p) => p.argv.join(' ')), [], `processes naming ${id} (the deleted database)`);
  }
}, { timeout: 300000 });

ctx.itShutsDownCleanly();
