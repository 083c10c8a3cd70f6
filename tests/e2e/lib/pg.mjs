// Real PostgreSQL connections through the `pg` client (and psql where simpler).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import pg from 'pg';

// Connects with a connection string exactly as the API returned it. The client never throws
// asynchronously: an 'error' event (e.g. the server terminated the session) is recorded in
// client.lastError and surfaces on the next query.
//
// node-postgres 8 reads sslmode=require (which every pgfleet string carries) as verify-full
// against the system CAs; uselibpqcompat=true gives libpq's meaning (encrypt, do not
// verify), as psql has it. Strings that name their own sslrootcert are left as they are.
export function libpqCompat(cs) {
  const s = String(cs);
  if (!/[?&]sslmode=require(&|$)/.test(s) || /[?&](uselibpqcompat|sslrootcert)=/.test(s)) return s;
  return `${s}&uselibpqcompat=true`;
}

export async function connect(cs, { timeoutMs = 10000 } = {}) {
  const c = new pg.Client({ connectionString: libpqCompat(cs), connectionTimeoutMillis: timeoutMs });
  c.lastError = null;
  c.on('error', (e) => { c.lastError = e; });
  await c.connect();
  return c;
}

export async function closeQuietly(c) {
  if (!c) return;
  try { await c.end(); } catch { /* already gone */ }
}

// One-shot: connect, run, close. Returns rows.
export async function sql(cs, text, params) {
  const c = await connect(cs);
  try {
    return (await c.query(text, params)).rows;
  } finally {
    await closeQuietly(c);
  }
}

// Resolves to the error a connection attempt fails with (asserts that it fails).
export async function connectFails(cs, what = 'connection') {
  let c;
  try {
    c = await connect(cs, { timeoutMs: 5000 });
  } catch (e) {
    return e;
  }
  await closeQuietly(c);
  assert.fail(`${what}: connecting with ${redact(cs)} succeeded, expected a failure`);
}

// Resolves to the error the statement fails with (asserts that it fails).
export async function queryFails(c, text, what = text) {
  try {
    await c.query(text);
  } catch (e) {
    return e;
  }
  assert.fail(`${what}: succeeded, expected an error`);
}

export function psql(cs, command, { timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile('psql', [cs, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', command], { timeout: timeoutMs, env: { ...process.env, PGCONNECT_TIMEOUT: '10' } }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`psql ${redact(cs)} -c ${JSON.stringify(command)} failed: ${stderr || err.message}`));
      resolve(stdout.trim());
    });
  });
}

export function redact(cs) {
  return String(cs).replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

export function passwordOf(cs) {
  try {
    return decodeURIComponent(new URL(cs).password);
  } catch {
    return null;
  }
}

export function withPassword(cs, password) {
  const u = new URL(cs);
  u.password = encodeURIComponent(password);
  return u.toString();
}
