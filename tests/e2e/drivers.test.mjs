// The printed connection strings, unchanged, with the drivers applications use (issue 12):
// psql, node-postgres (`pg`, as Prisma's @prisma/adapter-pg uses it: a pg.Pool from the
// string), postgres.js and psycopg 3, direct and pooled, with the public host on loopback
// (--tls-mode defaults to loopback-optional: strings carry no sslmode). The pooled endpoint
// (PgBouncer, transaction pooling) with concurrent clients and each driver's no-prepare
// option; verify-full with the CA file and host localhost.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, waitReady, uniq } from './lib/api.mjs';
import { psql } from './lib/pg.mjs';

const ctx = useServer('drivers');
const S = { ends: [] };
after(async () => { for (const f of S.ends) { try { await f(); } catch { /* gone */ } } });

// psycopg 3 (Debian's python3-psycopg, so Debian's python3) with the string in the
// environment; prints JSON
const PY = `
import json, os, sys, threading, psycopg
cs, mode = os.environ['CS'], sys.argv[1]
if mode == 'one':
    with psycopg.connect(cs) as c:
        r = c.execute('SELECT current_user, %s::int + 1', (41,)).fetchone()
        print(json.dumps({'user': r[0], 'n': r[1]}))
else:
    errors, done = [], []
    def work(k):
        try:
            # transaction pooling: no server-side prepared statements (psycopg prepares a
            # statement after five runs by default)
            with psycopg.connect(cs, prepare_threshold=None) as c:
                for i in range(20):
                    assert c.execute('SELECT %s::int * 2', (i,)).fetchone()[0] == 2 * i
                    with c.transaction():
                        assert c.execute('SELECT %s::text', (str(k),)).fetchone()[0] == str(k)
            done.append(k)
        except Exception as e:
            errors.append(repr(e))
    ts = [threading.Thread(target=work, args=(k,)) for k in range(int(sys.argv[2]))]
    [t.start() for t in ts]
    [t.join() for t in ts]
    print(json.dumps({'done': len(done), 'errors': errors}))
`;
function psycopg(cs, ...args) {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/python3', ['-c', PY, ...args], { env: { ...process.env, CS: cs }, timeout: 60000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`psycopg ${args.join(' ')}: ${stderr || err.message}`));
      resolve(JSON.parse(stdout));
    });
  });
}

const withHost = (cs, host, query = '') => { const u = new URL(cs); u.hostname = host; u.search = query; return u.toString(); };

ctx.it('setup: a database; strings on a loopback host carry no sslmode', async () => {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('drv') } }), 201).data;
  await waitReady(ctx.c, p.database.id);
  const conn = p.database.connections[0];
  S.direct = conn.endpoints.direct.connectionString;
  S.pooled = conn.endpoints.pooled.connectionString;
  for (const cs of [S.direct, S.pooled]) assert.match(cs, /^postgresql:\/\/u_[a-z0-9]+:[A-Za-z0-9]+@127\.0\.0\.1:\d+\/[a-z0-9_]+$/);
  const r = await fetch(`${ctx.server.baseUrl}/v1/ca.pem`);
  S.ca = path.join(ctx.server.home, 'client-ca.pem');
  fs.writeFileSync(S.ca, await r.text());
  await psql(S.direct, 'CREATE TABLE hits (k int, at timestamptz DEFAULT now())');
});

for (const kind of ['direct', 'pooled']) {
  ctx.it(`${kind}: psql, pg, a pg.Pool (as @prisma/adapter-pg), postgres.js and psycopg with the string as printed`, async () => {
    const cs = S[kind];
    assert.equal(await psql(cs, 'SELECT current_user'), 'pgfleet_owner', 'psql');
    const c = new pg.Client({ connectionString: cs });
    await c.connect();
    assert.equal((await c.query('SELECT $1::int + 1 AS n', [1])).rows[0].n, 2, 'pg');
    await c.end();
    const pool = new pg.Pool({ connectionString: cs, max: 3 });
    const tx = await pool.connect();
    await tx.query('BEGIN');
    await tx.query('INSERT INTO hits (k) VALUES ($1)', [1]);
    await tx.query('COMMIT');
    tx.release();
    assert.ok((await pool.query('SELECT count(*)::int AS n FROM hits')).rows[0].n >= 1, 'pg.Pool');
    await pool.end();
    const sql = postgres(cs, { max: 2, prepare: kind !== 'pooled', onnotice: () => {} });
    assert.equal((await sql`SELECT ${5}::int * 2 AS n`)[0].n, 10, 'postgres.js');
    await sql.begin(async (t) => { await t`INSERT INTO hits (k) VALUES (${2})`; });
    await sql.end();
    assert.deepEqual(await psycopg(cs, 'one'), { user: 'pgfleet_owner', n: 42 }, 'psycopg');
  });
}

ctx.it('pooled: concurrent clients of every driver with its no-prepare option, all at once', async () => {
  const cs = S.pooled;
  const t0 = Date.now();
  const js = Array.from({ length: 8 }, async (_, k) => {
    // postgres.js prepares named statements by default: prepare: false for transaction pooling
    const sql = postgres(cs, { max: 1, prepare: false, onnotice: () => {} });
    S.ends.push(() => sql.end({ timeout: 1 }));
    for (let i = 0; i < 25; i++) {
      assert.equal((await sql`SELECT ${i}::int + ${k}::int AS n`)[0].n, i + k);
      if (i % 5 === 0) await sql.begin(async (t) => { await t`INSERT INTO hits (k) VALUES (${k})`; });
    }
    await sql.end();
  });
  // node-postgres sends unnamed statements unless a query is given a name
  const pool = new pg.Pool({ connectionString: cs, max: 8 });
  S.ends.push(() => pool.end());
  const pgs = Array.from({ length: 200 }, async (_, i) => {
    const r = await pool.query('SELECT $1::int AS n, pg_backend_pid() AS pid', [i]);
    assert.equal(r.rows[0].n, i);
    return r.rows[0].pid;
  });
  const py = psycopg(cs, 'many', '6');
  await Promise.all(js);
  const pids = new Set(await Promise.all(pgs));
  const pyr = await py;
  assert.deepEqual(pyr, { done: 6, errors: [] }, 'psycopg threads');
  await pool.end();
  console.log(`# pooled: 8 postgres.js + 8 pg + 6 psycopg clients in ${Date.now() - t0} ms over ${pids.size} server session(s)`);
  assert.ok(pids.size >= 1);
});

ctx.it('verify-full with the CA file and host localhost, every driver, both endpoints', async () => {
  const ca = fs.readFileSync(S.ca, 'utf8');
  for (const kind of ['direct', 'pooled']) {
    const cs = withHost(S[kind], 'localhost');
    assert.equal(await psql(withHost(S[kind], 'localhost', `?sslmode=verify-full&sslrootcert=${S.ca}`), 'SELECT 1'), '1', `${kind} psql verify-full`);
    const c = new pg.Client({ connectionString: cs, ssl: { ca } });
    await c.connect();
    assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, `${kind} pg verify-full`);
    await c.end();
    const sql = postgres(cs, { ssl: { ca }, max: 1, prepare: false, onnotice: () => {} });
    assert.equal((await sql`SELECT 1 AS one`)[0].one, 1, `${kind} postgres.js verify-full`);
    await sql.end();
    assert.equal((await psycopg(withHost(S[kind], 'localhost', `?sslmode=verify-full&sslrootcert=${S.ca}`), 'one')).n, 42, `${kind} psycopg verify-full`);
  }
  // the direct server, over TLS, says so; a name the certificate does not carry is refused
  // TLS ends at the data path (docs/datapath.md): psql reports the session's TLS
  assert.match(await psql(withHost(S.direct, 'localhost', `?sslmode=verify-full&sslrootcert=${S.ca}`), '\\conninfo'), /SSL connection/);
  await assert.rejects(psql(withHost(S.direct, '127.0.0.2', `?sslmode=verify-full&sslrootcert=${S.ca}`), 'SELECT 1'), /does not match host name/);
});

ctx.it('plaintext is refused from a non-loopback address (TLS stays required there)', async (t) => {
  const ip = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  if (!ip) return t.skip('no non-loopback IPv4 address on this machine');
  const plain = new pg.Client({ connectionString: withHost(S.direct, ip), connectionTimeoutMillis: 5000 });
  plain.on('error', () => {});
  await assert.rejects(plain.connect(), /no encryption|pg_hba|SSL required/, 'plaintext from a non-loopback address');
  const tls = new pg.Client({ connectionString: withHost(S.direct, ip), ssl: { rejectUnauthorized: false }, connectionTimeoutMillis: 5000 });
  await tls.connect();
  assert.equal((await tls.query('SELECT 1 AS one')).rows[0].one, 1);
  await tls.end();
});

ctx.itShutsDownCleanly();
