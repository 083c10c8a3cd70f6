// GET /v1/doc: the OpenAPI 3.1 document of what pgfleet serves. It is valid (an OpenAPI
// validator from npm), current (the committed src/api/openapi.json is what gen-openapi.mjs
// makes now from the SDK and the route table), served as committed, and exact: every route
// of the table is documented, every documented operation is routed by the running server,
// and the contract's operations left out (out of scope) answer "No such endpoint".
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Validator } from '@seriousme/openapi-schema-validator';
import { useServer } from './lib/fixture.mjs';
import { repoRoot } from './lib/server.mjs';
import { readRoutes } from './lib/routes.mjs';

const ctx = useServer('openapi');
const it = ctx.it;
const committedFile = path.join(repoRoot, 'src/api/openapi.json');
const committed = JSON.parse(fs.readFileSync(committedFile, 'utf8'));
const index = JSON.parse(fs.readFileSync(path.join(repoRoot, 'tests/e2e/.schemas/index.json'), 'utf8'));

// a request the router answers for this (method, path template), ids filled with junk
async function probe(method, template) {
  const url = ctx.server.baseUrl + template.replace(/\{\w+\}/g, 'x_unknown');
  const r = await fetch(url, { method, redirect: 'manual', headers: { authorization: `Bearer ${ctx.server.adminToken}` } });
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* an HTML page, a PEM file */ }
  return { status: r.status, body, routed: r.status !== 405 && !(r.status === 404 && /^No such endpoint/.test(body?.error?.message ?? '')) };
}

it('the document is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator)', async () => {
  const v = new Validator();
  const res = await v.validate(structuredClone(committed));
  assert.ok(res.valid, `invalid: ${JSON.stringify(res).slice(0, 2000)}`);
  assert.equal(v.version, '3.1');
});

it('the committed document is what gen-openapi.mjs makes now (make openapi)', () => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pgfleet-openapi-')), 'openapi.json');
  try {
    execFileSync(process.execPath, ['gen-openapi.mjs', '--out', out], { cwd: path.join(repoRoot, 'tests/e2e'), stdio: 'pipe' });
    assert.deepEqual(JSON.parse(fs.readFileSync(out, 'utf8')), committed, 'src/api/openapi.json is stale: run `make openapi` and commit it');
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
});

it('GET /v1/doc serves it, without a credential, as JSON', async () => {
  const r = await fetch(`${ctx.server.baseUrl}/v1/doc`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(await r.json(), committed);
});

it('every route of the table is documented, and nothing else', () => {
  const routes = readRoutes().map((r) => `${r.method} ${r.path}`).sort();
  const documented = Object.entries(committed.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
  assert.deepEqual(documented, routes);
  // public routes carry no security requirement; the others the bearer scheme
  for (const r of readRoutes()) {
    const op = committed.paths[r.path][r.method.toLowerCase()];
    assert.deepEqual(op.security, r.public ? [] : [{ bearer: [] }], `${r.method} ${r.path}: security`);
  }
});

it('every documented operation is routed by the server (never "No such endpoint", never 405)', async () => {
  const unrouted = [];
  for (const [p, ops] of Object.entries(committed.paths)) {
    for (const m of Object.keys(ops)) {
      const r = await probe(m.toUpperCase(), p);
      if (!r.routed) unrouted.push(`${m.toUpperCase()} ${p} -> ${r.status}`);
    }
  }
  assert.deepEqual(unrouted, []);
});

it('contract operations are documented exactly when served: the out-of-scope ones answer 404 "No such endpoint"', async () => {
  let inScope = 0, outOfScope = 0;
  for (const [opId, o] of Object.entries(index)) {
    if (!o.method) continue;
    const documented = committed.paths[o.path]?.[o.method.toLowerCase()];
    const r = await probe(o.method, o.path);
    assert.equal(r.routed, Boolean(documented), `${opId} (${o.method} ${o.path}): routed ${r.routed} (${r.status}), documented ${Boolean(documented)}`);
    if (documented) {
      assert.equal(documented.operationId, opId);
      inScope++;
    } else {
      outOfScope++;
    }
  }
  assert.ok(inScope >= 40 && outOfScope >= 40, `in scope ${inScope}, out of scope ${outOfScope}`);
});

it('extensions are marked, and the extension fields of bodies and shapes are in the schemas', () => {
  const ext = Object.entries(committed.paths).flatMap(([p, ops]) => Object.entries(ops).filter(([, op]) => op['x-pgfleet-extension']).map(([m]) => `${m.toUpperCase()} ${p}`));
  for (const want of ['GET /v1/doc', 'GET /v1/ca.pem', 'GET /healthz', 'POST /v1/databases/{databaseId}/backups']) assert.ok(ext.includes(want), `${want} is an extension`);
  const schemas = committed.components.schemas;
  const bodyOf = (p, m) => schemas[committed.paths[p][m].requestBody.content['application/json'].schema.$ref.split('/').pop()];
  assert.ok(bodyOf('/v1/projects', 'post').properties.expiresAt, 'POST /v1/projects: expiresAt');
  assert.deepEqual(bodyOf('/v1/projects/{id}', 'patch').properties.expiresAt.type, ['string', 'null']);
  const project = schemas[committed.paths['/v1/projects/{id}'].get.responses['200'].content['application/json'].schema.$ref.split('/').pop()];
  assert.ok(project.properties.data.properties.expiresAt, 'the project shape lists expiresAt');
});

ctx.itShutsDownCleanly();
