// API helpers. Every response a test receives goes through expectShape: SDK calls via call(),
// raw fetch via raw() (only for what the SDK cannot express).
import assert from 'node:assert/strict';
import { createManagementApiClient } from '@prisma/management-api-sdk';
import { expectShape, expectEnvelope, opForTemplate, opForPath } from './schemas.mjs';
import { sleep } from './procs.mjs';

export function client(server, token = server.adminToken) {
  const c = createManagementApiClient({ token, baseUrl: server.baseUrl });
  c.server = server;
  return c;
}

// call(c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId } } })
// -> { status, body, data, error, response, opId }, body validated for its status.
export async function call(c, method, template, init = {}) {
  const opId = opForTemplate(method, template);
  const fn = c[method.toUpperCase()];
  const { data, error, response } = await fn(template, init);
  const status = response.status;
  const body = response.ok ? data : error;
  expectShape(opId, status, body, { what: `${method} ${response.url.replace(c.server?.baseUrl ?? '', '')}` });
  return { status, body, data, error, response, opId };
}

// Asserts an exact status, with the request and body in the message.
export function expectStatus(res, status, what = '') {
  const want = Array.isArray(status) ? status : [status];
  assert.ok(want.includes(res.status), `${what ? what + ': ' : ''}${res.opId ?? ''} ${res.response?.url ?? res.url ?? ''}: expected ${want.join(' or ')}, got ${res.status}: ${JSON.stringify(res.body)?.slice(0, 800)}`);
  return res.body;
}

// An error: exact status (or one of), the envelope (already validated), and a hint that names
// `field` when given.
export function expectError(res, status, { field, what = '' } = {}) {
  expectStatus(res, status, what);
  const e = res.body?.error;
  assert.ok(e && typeof e.code === 'string' && e.code.length > 0, `${what}: error.code missing: ${JSON.stringify(res.body)}`);
  assert.ok(typeof e.message === 'string' && e.message.length > 0, `${what}: error.message missing: ${JSON.stringify(res.body)}`);
  if (field) {
    assert.ok(typeof e.hint === 'string' && e.hint.includes(field), `${what}: error.hint should name \`${field}\`, got ${JSON.stringify(e)}`);
  }
  return e;
}

// Raw HTTP for what the SDK cannot send (malformed JSON, oversized bodies, no/odd tokens).
// The body is validated against the contract operation matched by method + path (the envelope
// for error statuses of paths outside the contract).
export async function raw(server, method, urlPath, { token = server.adminToken, body, json, headers = {} } = {}) {
  const h = { ...headers };
  if (token !== null && token !== undefined) h.authorization = `Bearer ${token}`;
  let payload = body;
  if (json !== undefined) {
    payload = JSON.stringify(json);
    h['content-type'] = 'application/json';
  } else if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
    h['content-type'] = 'application/json';
  }
  const response = await fetch(server.baseUrl + urlPath, { method, headers: h, body: payload });
  const text = await response.text();
  let parsed;
  if (text.length) {
    try {
      parsed = JSON.parse(text);
    } catch {
      assert.fail(`${method} ${urlPath}: ${response.status} with a body that is not JSON: ${text.slice(0, 300)}`);
    }
  }
  const opId = opForPath(method, urlPath);
  if (opId) expectShape(opId, response.status, parsed, { what: `${method} ${urlPath}` });
  else if (response.status >= 400) expectEnvelope(parsed, `${method} ${urlPath}`);
  return { status: response.status, body: parsed, text, response, opId, url: urlPath };
}

// Polls GET /v1/databases/{id} until status ready (fails on failure or after timeoutMs).
export async function waitReady(c, databaseId, { timeoutMs = 30000 } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    const r = await call(c, 'GET', '/v1/databases/{databaseId}', { params: { path: { databaseId } } });
    expectStatus(r, 200, `waitReady ${databaseId}`);
    last = r.body.data;
    if (last.status === 'ready') return last;
    assert.notEqual(last.status, 'failure', `database ${databaseId} ended in failure while waiting for ready`);
    if (Date.now() > end) assert.fail(`database ${databaseId} not ready within ${timeoutMs} ms (status ${last.status})`);
    await sleep(200);
  }
}

// Follows pagination.nextCursor until hasMore is false; returns every item.
export async function listAll(c, template, init = {}, { limit = 100, maxPages = 100 } = {}) {
  const items = [];
  let cursor;
  for (let page = 0; page < maxPages; page++) {
    const query = { ...(init.params?.query || {}), limit, ...(cursor ? { cursor } : {}) };
    const r = await call(c, 'GET', template, { ...init, params: { ...(init.params || {}), query } });
    expectStatus(r, 200, `list ${template}`);
    items.push(...r.body.data);
    if (!r.body.pagination.hasMore) return items;
    cursor = r.body.pagination.nextCursor;
    assert.ok(cursor, `${template}: hasMore true without nextCursor`);
  }
  assert.fail(`${template}: more than ${maxPages} pages`);
}

// A well-formed id that does not exist: the same prefix and alphabet, a different tail.
export function unknownLike(id) {
  const chars = [...id];
  let changed = 0;
  for (let i = chars.length - 1; i >= 0 && changed < 8; i--) {
    const ch = chars[i];
    if (/[0-9]/.test(ch)) chars[i] = String((Number(ch) + 3) % 10);
    else if (/[a-z]/.test(ch)) chars[i] = String.fromCharCode(((ch.charCodeAt(0) - 97 + 7) % 26) + 97);
    else if (/[A-Z]/.test(ch)) chars[i] = String.fromCharCode(((ch.charCodeAt(0) - 65 + 7) % 26) + 65);
    else continue;
    changed++;
  }
  return chars.join('');
}

// Connection strings a connection object carries (direct, pooled, deprecated top-level),
// only postgres:// URLs.
export function connectionStrings(conn) {
  const out = [];
  for (const k of ['direct', 'pooled']) {
    const cs = conn?.endpoints?.[k]?.connectionString;
    if (cs) out.push({ kind: k, cs });
  }
  if (typeof conn?.connectionString === 'string' && /^postgres(ql)?:\/\//.test(conn.connectionString) && !out.some((o) => o.cs === conn.connectionString)) {
    out.push({ kind: 'connectionString', cs: conn.connectionString });
  }
  return out;
}

export function uniq(prefix = 'e2e') {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
