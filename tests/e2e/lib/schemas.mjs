// Contract checks: JSON Schemas generated from the SDK's types (gen-schemas.mjs) loaded into
// ajv. expectShape(operationId, status, body) is the one entry point the tests use (directly
// or through lib/api.mjs, which calls it for every response).
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const dir = path.join(root, '.schemas');

function load() {
  const schemaFile = path.join(dir, 'contract.schema.json');
  const indexFile = path.join(dir, 'index.json');
  if (!fs.existsSync(schemaFile) || !fs.existsSync(indexFile)) {
    execFileSync(process.execPath, [path.join(root, 'gen-schemas.mjs')], { stdio: 'inherit' });
  }
  return {
    schema: JSON.parse(fs.readFileSync(schemaFile, 'utf8')),
    index: JSON.parse(fs.readFileSync(indexFile, 'utf8')),
  };
}

const { schema, index } = load();

// Triage knob (never for CI): E2E_ALLOW_EXTRA_PROPS=1 opens every object schema, so one
// undocumented extra field does not hide every other failure behind it.
if (process.env.E2E_ALLOW_EXTRA_PROPS === '1') {
  (function open(n) {
    if (Array.isArray(n)) return n.forEach(open);
    if (!n || typeof n !== 'object') return;
    if (n.additionalProperties === false) delete n.additionalProperties;
    Object.values(n).forEach(open);
  })(schema);
}
const ajv = new Ajv({ allErrors: true, strict: false, strictRequired: false, verbose: false });
addFormats(ajv);
ajv.addSchema(schema, 'contract');

// The error envelope every error status uses: {"error":{"code","message","hint"?}}. Taken from
// the contract (any declared error response), not written by hand.
const envelopeAlias = index.getV1ProjectsById?.statuses['404']?.alias;
if (!envelopeAlias) throw new Error('contract: getV1ProjectsById 404 (the error envelope) missing from .schemas');
const validators = new Map();
function validator(alias) {
  let v = validators.get(alias);
  if (!v) {
    v = ajv.getSchema(`contract#/definitions/${alias}`);
    if (!v) throw new Error(`no schema for ${alias}`);
    validators.set(alias, v);
  }
  return v;
}

// Error statuses a test met that the contract does not declare for that operation (e.g. 400
// for a bad `limit` on GET /v1/databases, which declares only 200/401/403). They are checked
// against the envelope and reported; 2xx statuses must always be declared.
export const undeclared = new Map();
process.on('exit', () => {
  if (undeclared.size) {
    console.log(`# contract: error statuses not declared by the SDK for these operations (checked against the envelope): ${[...undeclared.keys()].join(', ')}`);
  }
});

export function operation(opId) {
  const o = index[opId];
  if (!o) throw new Error(`unknown operation ${opId}`);
  return o;
}

// Route lookup: (method, '/v1/databases/{databaseId}') -> operationId, and concrete paths
// ('/v1/databases/db_123') -> operationId (the most literal template wins).
const routes = Object.entries(index)
  .filter(([, o]) => o.path)
  .map(([opId, o]) => {
    const segs = o.path.split('/');
    return {
      opId,
      method: o.method,
      template: o.path,
      literal: segs.filter((s) => !s.startsWith('{')).length,
      re: new RegExp('^' + segs.map((s) => (s.startsWith('{') ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/') + '$'),
    };
  });

export function opForTemplate(method, template) {
  const r = routes.find((x) => x.method === method.toUpperCase() && x.template === template);
  if (!r) throw new Error(`no operation for ${method} ${template} in the contract`);
  return r.opId;
}

export function opForPath(method, urlPath) {
  const p = urlPath.split('?')[0];
  const m = routes
    .filter((x) => x.method === method.toUpperCase() && x.re.test(p))
    .sort((a, b) => b.literal - a.literal);
  return m[0]?.opId;
}

function fmtErrors(errors) {
  return (errors || []).slice(0, 12).map((e) => `  ${e.instancePath || '/'} ${e.message}${e.params && Object.keys(e.params).length ? ' ' + JSON.stringify(e.params) : ''}`).join('\n');
}

function clip(body) {
  const s = JSON.stringify(body);
  return s === undefined ? String(body) : s.length > 1500 ? s.slice(0, 1500) + '...' : s;
}

// Validates `body` (parsed JSON; undefined/'' for no body) against the contract's schema for
// operationId + status. Throws an AssertionError naming the operation, status and mismatch.
export function expectShape(opId, status, body, { what } = {}) {
  const o = operation(opId);
  const st = o.statuses[String(status)];
  const label = `${opId} ${status}${what ? ` (${what})` : ''}`;
  if (!st) {
    if (status >= 400 && envelopeAlias) {
      undeclared.set(`${opId}:${status}`, true);
      const v = validator(envelopeAlias);
      assert.ok(v(body), `${label}: status not declared in the contract and body is not the error envelope:\n${fmtErrors(v.errors)}\nbody: ${clip(body)}`);
      return body;
    }
    assert.fail(`${label}: status ${status} is not declared in the contract for ${o.method} ${o.path} (declared: ${Object.keys(o.statuses).join(', ')}); body: ${clip(body)}`);
  }
  if (!st.body) {
    assert.ok(body === undefined || body === null || body === '', `${label}: the contract declares no body, got ${clip(body)}`);
    return body;
  }
  if (!st.alias) assert.fail(`${label}: the schema could not be generated (${st.generatorError}); cannot validate`);
  const v = validator(st.alias);
  assert.ok(v(body), `${label}: body does not match the contract:\n${fmtErrors(v.errors)}\nbody: ${clip(body)}`);
  return body;
}

// The error envelope alone (for responses of routes outside the contract, e.g. 404 for an
// unknown path).
export function expectEnvelope(body, what = '') {
  const v = validator(envelopeAlias);
  assert.ok(v(body), `error envelope${what ? ` (${what})` : ''}:\n${fmtErrors(v.errors)}\nbody: ${clip(body)}`);
  return body;
}
