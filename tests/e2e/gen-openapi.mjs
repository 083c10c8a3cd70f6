#!/usr/bin/env node
// Generates the OpenAPI 3.1 document pgfleet serves at GET /v1/doc (src/api/openapi.json,
// committed and embedded in the binary by src/api/doc.c) from the same pipeline as the tests'
// schemas: gen-schemas.mjs turns the SDK's types (responses, request bodies, query
// parameters) into JSON Schemas (.schemas/); this script keeps the operations pgfleet serves.
//
//  - The routes come from the route table, src/api/routes.c ({"METHOD", "/path", handler,
//    flags}): exactly what the server routes, so the contract's out-of-scope paths (apps,
//    buckets, ... answered 404) are left out.
//  - A route that is a contract operation takes the contract's operationId, summary,
//    parameters, request body and responses (schemas under components/schemas, with the
//    documented additive fields of schema-extensions.json); openapi-extensions.json adds
//    the extension fields of request bodies (docs/api.md).
//  - A route that is not in the contract is an extension: openapi-extensions.json describes
//    it (x-pgfleet-extension: true). A route in neither fails the generation.
//
// Usage: node gen-schemas.mjs && node gen-openapi.mjs [--out FILE]   (default ../../src/api/openapi.json)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readRoutes } from './lib/routes.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const outArg = process.argv.indexOf('--out');
const outFile = outArg > 0 ? path.resolve(process.argv[outArg + 1]) : path.join(root, 'src/api/openapi.json');

const schema = JSON.parse(fs.readFileSync(path.join(here, '.schemas/contract.schema.json'), 'utf8'));
const index = JSON.parse(fs.readFileSync(path.join(here, '.schemas/index.json'), 'utf8'));
const ext = JSON.parse(fs.readFileSync(path.join(here, 'openapi-extensions.json'), 'utf8'));
const version = /#define PGFLEET_VERSION "([^"]+)"/.exec(fs.readFileSync(path.join(root, 'src/main.c'), 'utf8'))[1];

const byRoute = new Map();
for (const [opId, o] of Object.entries(index)) if (o.method) byRoute.set(`${o.method} ${o.path}`, opId);

const used = new Set();
const ref = (alias) => { used.add(alias); return { $ref: `#/components/schemas/${alias}` }; };

function parameters(opId, o, routePath) {
  const ps = [];
  for (const m of routePath.matchAll(/\{(\w+)\}/g)) ps.push({ name: m[1], in: 'path', required: true, schema: { type: 'string' } });
  if (o.query) {
    const q = schema.definitions[o.query.alias];
    for (const [name, s] of Object.entries(q?.properties ?? {})) {
      ps.push({ name, in: 'query', required: o.query.required.includes(name), schema: s });
    }
  }
  for (const p of ext.queryParameters?.[opId] ?? []) ps.push(p);
  return ps;
}

function requestBody(opId, o) {
  if (!o.request) return undefined;
  const alias = o.request.alias;
  const adds = ext.requestFields?.[opId];
  if (adds) {
    // the extension fields go into a copy, so the contract's own schema stays as typed
    const def = structuredClone(schema.definitions[alias]);
    for (const a of adds) {
      let node = def;
      for (const k of a.within ?? []) node = node.properties[k];
      const targets = node.anyOf ?? [node];
      for (const t of targets) {
        if (t.type !== 'object' || (a.when && !Object.entries(a.when).every(([k, v]) => t.properties?.[k]?.const === v))) continue;
        t.properties[a.name] = a.schema;
      }
    }
    schema.definitions[`${alias}_pgfleet`] = def;
    return { required: o.request.required, content: { 'application/json': { schema: ref(`${alias}_pgfleet`) } } };
  }
  return { required: o.request.required, content: { 'application/json': { schema: ref(alias) } } };
}

function responses(o) {
  const out = {};
  for (const [status, st] of Object.entries(o.statuses)) {
    out[status] = { description: `HTTP ${status}` };
    if (st.body && st.alias) out[status].content = { 'application/json': { schema: ref(st.alias) } };
  }
  return out;
}

const paths = {};
const missing = [];
for (const r of readRoutes()) {
  const key = `${r.method} ${r.path}`;
  const opId = byRoute.get(key);
  let op;
  if (opId) {
    const o = index[opId];
    op = { operationId: opId };
    if (o.summary) op.summary = o.summary;
    const ps = parameters(opId, o, r.path);
    if (ps.length) op.parameters = ps;
    const rb = requestBody(opId, o);
    if (rb) op.requestBody = rb;
    op.responses = responses(o);
  } else if (ext.operations?.[key]) {
    op = { ...structuredClone(ext.operations[key]), 'x-pgfleet-extension': true };
    const ps = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (ps.length) op.parameters = [...ps, ...(op.parameters ?? [])];
    for (const m of JSON.stringify(op).matchAll(/"#\/components\/schemas\/([^"]+)"/g)) used.add(m[1]);
  } else {
    missing.push(key);
    continue;
  }
  if (!r.public) op.security = [{ bearer: [] }];
  else op.security = [];
  (paths[r.path] ??= {})[r.method.toLowerCase()] = op;
}
if (missing.length) {
  console.error(`gen-openapi: routes neither in the contract nor in openapi-extensions.json:\n  ${missing.join('\n  ')}`);
  process.exit(1);
}

// ---- components: the schemas used, with their references moved under components
const components = { schemas: {}, securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a service token (pfs_...) or an OAuth2 access token' } } };
Object.assign(schema.definitions, ext.schemas ?? {});
const pending = [...used];
const seen = new Set();
while (pending.length) {
  const name = pending.pop();
  if (seen.has(name)) continue;
  seen.add(name);
  const def = schema.definitions[name];
  if (!def) throw new Error(`gen-openapi: no schema ${name}`);
  const text = JSON.stringify(def).replaceAll('#/definitions/', '#/components/schemas/');
  for (const m of text.matchAll(/"#\/components\/schemas\/([^"]+)"/g)) pending.push(decodeURIComponent(m[1]));
  components.schemas[name] = JSON.parse(text);
}
components.schemas = Object.fromEntries(Object.entries(components.schemas).sort(([a], [b]) => a.localeCompare(b)));

const doc = {
  openapi: '3.1.0',
  info: {
    title: 'pgfleet',
    version,
    summary: 'The Prisma Postgres Management API (v1) as pgfleet serves it',
    description: 'Generated from @prisma/management-api-sdk (the contract) and pgfleet\'s route table by tests/e2e/gen-openapi.mjs: the contract\'s operations pgfleet serves and its extensions (x-pgfleet-extension), as listed in docs/api.md.',
  },
  jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
  paths,
  components,
};
fs.writeFileSync(outFile, JSON.stringify(doc, null, 1) + '\n');
const nops = Object.values(paths).reduce((a, p) => a + Object.keys(p).length, 0);
console.log(`gen-openapi: ${nops} operations on ${Object.keys(paths).length} paths, ${Object.keys(components.schemas).length} schemas -> ${path.relative(process.cwd(), outFile)}`);
