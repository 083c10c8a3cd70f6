// What a connection's role may do within its own database server (issue 12): see and
// cancel every session but pgfleet's own, pg_stat_statements, CREATE/DROP DATABASE (the
// sequence `prisma migrate dev` runs for its shadow database) with those databases kept by
// restore and clone, every allowlisted extension, the trojan defence of CREATE EXTENSION,
// what stays refused, no SCRAM verifier in a user's view, and a dump of another
// PostgreSQL 15 (a superuser-owned server this file starts) restored with --no-owner.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { useServer } from './lib/fixture.mjs';
import { call, raw, expectStatus, waitReady, uniq } from './lib/api.mjs';
import { connect, closeQuietly, queryFails, psql } from './lib/pg.mjs';
import { until, sleep, freePort } from './lib/procs.mjs';

const ctx = useServer('privileges');
const S = { clients: [] };
after(async () => { for (const c of S.clients) await closeQuietly(c); });

const PGBIN = '/usr/lib/postgresql/15/bin';
const directCs = (conn) => conn.endpoints.direct.connectionString;
const inDb = (cs, db) => { const u = new URL(cs); u.pathname = `/${db}`; return u.toString(); };
async function open(cs) { const c = await connect(cs); S.clients.push(c); return c; }
const one = async (c, q, params) => (await c.query(q, params)).rows[0];

function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 60000, maxBuffer: 8 << 20, ...opts }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`));
      resolve({ stdout, stderr });
    });
  });
}

async function newDatabase(name) {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq(name) } }), 201).data;
  await waitReady(ctx.c, p.database.id);
  return { project: p, db: p.database, cs: directCs(p.database.connections[0]) };
}

// every server's private socket is run/<id>/.s.PGSQL.5432, whatever its public port
const SOCKET_PORT = 5432;

// pgfleet's own admin session on the database's server, over its private socket (the
// tests run as the user who may enter it); application_name names it as pgfleet's does
async function adminSession(dbId) {
  const c = new pg.Client({ host: path.join(ctx.server.home, 'run', dbId), port: SOCKET_PORT, user: 'pgfleet_admin', database: 'postgres', application_name: 'pgfleet' });
  await c.connect();
  S.clients.push(c);
  return c;
}

ctx.it('setup: a database, two credentials', async () => {
  Object.assign(S, await newDatabase('priv'));
  const made = expectStatus(await call(ctx.c, 'POST', '/v1/connections', { body: { databaseId: S.db.id, name: 'second' } }), 201).data;
  S.cs2 = directCs(made);
});

ctx.it('a role sees every session of its server, and cancels and terminates one of another credential', async () => {
  const a = await open(S.cs);
  const b = await open(S.cs2);
  const bPid = (await one(b, 'SELECT pg_backend_pid() AS pid')).pid;
  // settles to its error (or null), so the cancel is never an unhandled rejection
  const sleeping = b.query('SELECT pg_sleep(30) AS slept_e2e_marker').then(() => null, (e) => e);
  let row;
  const seen = await until(async () => {
    row = await one(a, "SELECT pid, usename, query, state FROM pg_stat_activity WHERE query LIKE '%slept_e2e%' AND pid <> pg_backend_pid()");
    return row?.state === 'active';
  }, { timeoutMs: 10000, intervalMs: 100 });
  assert.ok(seen, `the other credential's running query is not visible: ${JSON.stringify(row)}`);
  assert.equal(row.pid, bPid);
  assert.match(row.query, /pg_sleep\(30\)/, 'query text visible, not <insufficient privilege>');
  assert.equal((await one(a, 'SELECT pg_cancel_backend($1) AS ok', [bPid])).ok, true);
  assert.equal((await sleeping)?.code, '57014', 'the cancelled query ends with query_canceled');
  assert.equal((await one(b, 'SELECT 1 AS one')).one, 1, 'a cancel keeps the session');
  assert.equal((await one(a, 'SELECT pg_terminate_backend($1, 5000) AS ok', [bPid])).ok, true);
  // its own session shows in pg_stat_ssl; TLS ends at the data path (docs/datapath.md), so
  // the server sees its Unix socket there, and the client sees TLS
  assert.equal(await psql(S.cs, 'SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid()'), '1');
  const tls = new URL(S.cs);
  tls.searchParams.set('sslmode', 'require');
  assert.match(await psql(tls.toString(), '\\conninfo'), /SSL connection/);
});

ctx.it('pgfleet\'s admin sessions cannot be signalled, and show no query text', async () => {
  const admin = await adminSession(S.db.id);
  const adminPid = (await one(admin, 'SELECT pg_backend_pid() AS pid')).pid;
  const a = await open(S.cs);
  for (const f of ['pg_cancel_backend($1)', 'pg_terminate_backend($1)']) {
    const e = await queryFails(a, { text: `SELECT ${f}`, values: [adminPid] }, f);
    assert.equal(e.code, '42501', `${f}: ${e.message}`);
    assert.match(e.message, /superuser/);
  }
  assert.equal((await one(admin, 'SELECT 1 AS one')).one, 1, 'the admin session lives on');
});

ctx.it('no SCRAM verifier in pg_stat_statements or pg_stat_activity as a user, after credential changes', async () => {
  // every credential change sends `CREATE/ALTER ROLE ... PASSWORD '<verifier>'` to the server
  const made = expectStatus(await call(ctx.c, 'POST', '/v1/connections', { body: { databaseId: S.db.id, name: 'third' } }), 201).data;
  expectStatus(await call(ctx.c, 'DELETE', '/v1/connections/{id}', { params: { path: { id: made.id } } }), 204);
  const a = await open(S.cs);
  // the pattern is built at run time so this statement's own text never matches it
  const pat = "'SCRAM-SHA' || '-256\\$'";
  const ss = await one(a, `SELECT count(*)::int AS n, (SELECT count(*)::int FROM pg_stat_statements) AS total FROM pg_stat_statements WHERE query ~ (${pat})`);
  assert.ok(ss.total > 0, 'pg_stat_statements holds statements');
  assert.equal(ss.n, 0, 'a verifier in pg_stat_statements');
  const sa = await one(a, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query ~ (${pat})`);
  assert.equal(sa.n, 0, 'a verifier in pg_stat_activity');
  const roles = await one(a, "SELECT count(*)::int AS n FROM pg_stat_statements WHERE query ~* 'ALTER ROLE|CREATE ROLE'");
  assert.equal(roles.n, 0, 'pgfleet\'s role statements are not tracked');
});

ctx.it('pg_stat_statements counts the role\'s queries; the role may reset it', async () => {
  const a = await open(S.cs);
  for (let i = 0; i < 3; i++) await a.query('SELECT $1::int AS counted_e2e_marker', [i]);
  const r = await one(a, "SELECT calls::int FROM pg_stat_statements WHERE query LIKE 'SELECT $1::int AS counted_e2e_marker%'");
  assert.equal(r?.calls, 3);
  await a.query('SELECT pg_stat_statements_reset()');
  const after = await one(a, "SELECT count(*)::int AS n FROM pg_stat_statements WHERE query LIKE '%counted_e2e_marker%'");
  assert.equal(after.n, 0);
  assert.equal((await one(a, "SELECT setting FROM pg_settings WHERE name = 'pg_stat_statements.max'")).setting, '1000');
});

ctx.it('CREATE DATABASE and DROP DATABASE as `prisma migrate dev` does for its shadow database', async () => {
  const a = await open(S.cs);
  const shadow = `prisma_migrate_shadow_db_${Math.random().toString(16).slice(2, 10)}`;
  await a.query(`CREATE DATABASE "${shadow}"`);
  const s = await open(inDb(S.cs, shadow));
  await s.query('CREATE TABLE "_prisma_migrations" (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL)');
  await s.query('CREATE TABLE "User" (id serial PRIMARY KEY, email text NOT NULL UNIQUE)');
  await s.query('CREATE EXTENSION IF NOT EXISTS "citext"');
  await s.query("INSERT INTO \"_prisma_migrations\" VALUES ('m1', 'c')");
  assert.equal((await one(s, 'SELECT count(*)::int AS n FROM "User"')).n, 0);
  await closeQuietly(s);
  await a.query(`DROP DATABASE IF EXISTS "${shadow}"`);
  assert.equal((await one(a, 'SELECT count(*)::int AS n FROM pg_database WHERE datname = $1', [shadow])).n, 0);
  // its own databases only: not pgfleet's, not the template
  for (const [stmt, what] of [['DROP DATABASE postgres', 'drop postgres'], ['DROP DATABASE template1', 'drop template1']]) {
    const e = await queryFails(a, stmt, what);
    assert.ok(['42501', '55006'].includes(e.code), `${what}: ${e.code} ${e.message}`);
  }
});

ctx.it('a database made with CREATE DATABASE, and a table in it, survive a restore and a clone', async () => {
  const a = await open(S.cs);
  await a.query('CREATE DATABASE appdata');
  const d = await open(inDb(S.cs, 'appdata'));
  await d.query('CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)');
  await closeQuietly(d);
  const r = await raw(ctx.server, 'POST', `/v1/databases/${S.db.id}/backups`, { json: {} });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const id = r.body.data.id;
  let b;
  const done = await until(async () => {
    b = expectStatus(await call(ctx.c, 'GET', '/v1/databases/{databaseId}/backups', { params: { path: { databaseId: S.db.id } } }), 200).data.find((x) => x.id === id);
    return b && b.status !== 'running';
  }, { timeoutMs: 60000, intervalMs: 200 });
  assert.ok(done && b.status === 'completed', JSON.stringify(b));
  await a.query('DROP DATABASE appdata WITH (FORCE)');
  for (const c of S.clients) await closeQuietly(c);
  S.clients = [];
  const rs = expectStatus(await call(ctx.c, 'POST', '/v1/databases/{targetDatabaseId}/restore', { params: { path: { targetDatabaseId: S.db.id } }, body: { source: { type: 'backup', databaseId: S.db.id, backupId: id } } }), 200).data;
  assert.equal(rs.status, 'recovering');
  await waitReady(ctx.c, S.db.id, { timeoutMs: 90000 });
  const back = await open(inDb(S.cs, 'appdata'));
  assert.deepEqual((await back.query('SELECT x FROM kept')).rows, [{ x: 7 }], 'restored');
  await closeQuietly(back);
  const cl = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name: uniq('clone'), source: { type: 'database', databaseId: S.db.id } } }), 201).data;
  await waitReady(ctx.c, cl.id, { timeoutMs: 90000 });
  const c2 = await open(inDb(directCs(cl.connections[0]), 'appdata'));
  assert.deepEqual((await c2.query('SELECT x FROM kept')).rows, [{ x: 7 }], 'cloned');
});

ctx.it('every allowlisted extension is created by the role, and works for it', async () => {
  const a = await open(S.cs);
  await a.query('CREATE DATABASE extdb');
  const c = await open(inDb(S.cs, 'extdb'));
  const list = (await one(c, "SELECT current_setting('extwlist.extensions') AS l")).l.split(',').map((s) => s.trim());
  for (const want of ['pg_stat_statements', 'postgis', 'pg_trgm', 'pgcrypto', 'uuid-ossp', 'citext', 'hstore', 'btree_gin', 'btree_gist', 'ltree', 'unaccent', 'cube', 'earthdistance', 'tablefunc', 'hypopg', 'pg_partman']) {
    assert.ok(list.includes(want), `${want} on the allowlist`);
  }
  // pg_partman makes template tables in its own schema: it gets one the role owns, as its
  // documentation has it (docs/extensions.md); every other one goes to `extensions`
  await c.query('CREATE SCHEMA partman');
  for (const ext of list) await c.query(`CREATE EXTENSION IF NOT EXISTS "${ext}"${ext === 'pg_partman' ? ' SCHEMA partman' : ''}`);
  const got = (await c.query('SELECT extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace')).rows;
  for (const ext of list) {
    const row = got.find((r) => r.extname === ext);
    assert.ok(row, `${ext} created`);
    assert.equal(row.nspname, ext === 'pg_partman' ? 'partman' : 'extensions', `${ext} went into the schema users cannot write`);
  }
  assert.equal((await one(c, "SELECT has_schema_privilege('pgfleet_owner', 'extensions', 'CREATE') AS w")).w, false);
  // what needs more than the script works for the role
  await c.query("INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, proj4text) VALUES (990001, 'e2e', 990001, '+proj=longlat +datum=WGS84 +no_defs')");
  assert.equal((await one(c, "SELECT round(ST_Distance('SRID=4326;POINT(0 0)'::geography, 'SRID=4326;POINT(0 1)'::geography)) AS m")).m, 110574);
  assert.ok((await one(c, "SELECT similarity('pgfleet', 'pgfleat') AS s")).s > 0.3);
  assert.match((await one(c, 'SELECT uuid_generate_v4()::text AS u')).u, /^[0-9a-f-]{36}$/);
  await c.query('CREATE TABLE geo (id int, g geometry(Point, 4326), name text)');
  await c.query('CREATE INDEX ON geo USING gist (g)');
  await c.query('CREATE INDEX ON geo USING gin (name gin_trgm_ops)');
  assert.ok((await one(c, "SELECT indexrelid FROM hypopg_create_index('CREATE INDEX ON geo (id)')")).indexrelid > 0);
  await c.query('CREATE TABLE events (id bigint NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (id)');
  await c.query("SELECT partman.create_parent('public.events', 'id', 'native', '1000')");
  assert.ok((await one(c, "SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'events'::regclass")).n > 0, 'pg_partman made partitions');
  await c.query('SELECT partman.run_maintenance()');
  await c.query('SELECT pg_stat_statements_reset()');
  // off the list: refused, even PostgreSQL's own trusted ones
  const e = await queryFails(c, 'CREATE EXTENSION seg', 'seg (trusted, not allowlisted)');
  assert.match(e.message, /allowlist|whitelisted/);
  await c.query('DROP EXTENSION hypopg');
});

ctx.it('a trojan planted for an extension script gets no superuser', async () => {
  const a = await open(S.cs);
  // a function that would make the owner role a superuser if the superuser ran it
  await a.query(`CREATE FUNCTION public.upper(varchar) RETURNS text LANGUAGE sql
                 AS $$ ALTER ROLE pgfleet_owner SUPERUSER; SELECT 'x'::text $$`);
  const named = await queryFails(a, 'CREATE EXTENSION hstore SCHEMA public', 'an extension into the schema holding the trojan');
  assert.match(named.message, /refused while public\.upper/);
  const b = await open(S.cs);
  await b.query('CREATE TEMP TABLE spatial_ref_sys (srid int)');
  const tmp = await queryFails(b, 'CREATE EXTENSION tablefunc', 'with temporary objects');
  assert.match(tmp.message, /temporary objects/);
  // without SCHEMA it goes to `extensions`, where the script never sees public
  await a.query('CREATE EXTENSION hstore');
  assert.equal((await one(a, "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'hstore'")).nspname, 'extensions');
  assert.equal((await one(a, "SELECT rolsuper FROM pg_roles WHERE rolname = 'pgfleet_owner'")).rolsuper, false);
  assert.equal((await one(a, "SELECT current_setting('is_superuser') AS su")).su, 'off');
  // the guard itself is out of reach
  for (const [stmt, what] of [
    ['ALTER EVENT TRIGGER pgfleet_extension_before DISABLE', 'disable the guard'],
    ['DROP EVENT TRIGGER pgfleet_extension_before', 'drop the guard'],
    ['CREATE FUNCTION extensions.f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$', 'write into extensions'],
    ['DROP EXTENSION plpgsql', 'drop plpgsql'],
  ]) await queryFails(a, stmt, what);
  await a.query('DROP FUNCTION public.upper(varchar)');
});

ctx.it('refused: superuser, CREATEROLE, untrusted languages, files and programs, other servers, ALTER SYSTEM', async () => {
  const a = await open(S.cs);
  await a.query('CREATE TABLE IF NOT EXISTS t (x text)');
  const other = await newDatabase('other');
  const otherData = path.join(ctx.server.home, 'instances', other.db.id, 'data');
  const otherSock = path.join(ctx.server.home, 'run', other.db.id);
  const checks = [
    ['ALTER ROLE pgfleet_owner SUPERUSER', 'superuser'],
    ['ALTER ROLE CURRENT_USER CREATEROLE', 'CREATEROLE'],
    ['CREATE ROLE e2e_x', 'CREATE ROLE'],
    ['GRANT pg_execute_server_program TO pgfleet_owner', 'pg_execute_server_program'],
    ['SET ROLE pgfleet_admin', 'SET ROLE admin'],
    ["CREATE FUNCTION f_c() RETURNS int LANGUAGE c AS 'libc.so.6', 'getpid'", 'LANGUAGE c'],
    ["CREATE FUNCTION f_i() RETURNS int LANGUAGE internal AS 'pg_backend_pid'", 'LANGUAGE internal'],
    ['CREATE EXTENSION plperlu', 'plperlu'],
    ['CREATE EXTENSION plpython3u', 'plpython3u'],
    ["COPY t FROM PROGRAM 'id'", 'COPY FROM PROGRAM'],
    ["COPY t TO PROGRAM 'true'", 'COPY TO PROGRAM'],
    ["COPY t FROM '/etc/passwd'", 'COPY FROM a file'],
    [`COPY t FROM '${otherData}/PG_VERSION'`, 'another server\'s files'],
    ["SELECT pg_read_file('/etc/passwd')", 'pg_read_file'],
    [`SELECT pg_ls_dir('${otherData}')`, 'pg_ls_dir of another server'],
    ["SELECT lo_import('/etc/passwd')", 'lo_import'],
    ['CREATE EXTENSION dblink', 'dblink'],
    ['CREATE EXTENSION postgres_fdw', 'postgres_fdw'],
    ['CREATE EXTENSION file_fdw', 'file_fdw'],
    ['CREATE EXTENSION adminpack', 'adminpack'],
    ["ALTER SYSTEM SET work_mem = '8MB'", 'ALTER SYSTEM'],
    ["SET session_preload_libraries = ''", 'pgextwlist off'],
    ['ALTER DATABASE postgres SET search_path = public', 'settings of pgfleet\'s database'],
  ];
  for (const [stmt, what] of checks) {
    const e = await queryFails(a, stmt, what);
    assert.ok(e.code && e.code !== '57P01', `${what}: unexpected error ${e.code} ${e.message}`);
    await a.query('SELECT 1');
  }
  // the other server's socket is not reachable with this server's credentials either
  const u = new URL(S.cs);
  const c = new pg.Client({ host: otherSock, port: SOCKET_PORT, user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database: 'postgres' });
  await assert.rejects(c.connect(), (e) => ['28P01', '28000'].includes(e.code), 'credentials of one server on another\'s socket');
});

// ---- a dump of another PostgreSQL 15 ----

function pgUser() {
  if (process.getuid() !== 0) return {};
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

ctx.it('a dump of another superuser-owned PostgreSQL 15 restores with pg_restore --no-owner --no-acl, with no error', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgfleet-src-'));
  const ids = pgUser();
  if (ids.uid !== undefined) fs.chownSync(dir, ids.uid, ids.gid);
  const data = path.join(dir, 'data');
  const port = await freePort();
  await run(`${PGBIN}/initdb`, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8'], { ...ids, cwd: dir });
  const srv = spawn(`${PGBIN}/postgres`, ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=', '-c', 'fsync=off'], { ...ids, cwd: dir, stdio: 'ignore' });
  try {
    const src = `postgresql://postgres@/postgres?host=${encodeURIComponent(dir)}&port=${port}`;
    assert.ok(await until(async () => { try { await psql(src, 'SELECT 1'); return true; } catch { return false; } }, { timeoutMs: 20000 }), 'source server up');
    await psql(src, `
      CREATE ROLE alice; CREATE ROLE bob; GRANT CREATE ON SCHEMA public TO bob;
      CREATE EXTENSION pg_trgm; CREATE EXTENSION hstore; CREATE EXTENSION citext; CREATE EXTENSION "uuid-ossp";
      CREATE SCHEMA app AUTHORIZATION alice;
      SET ROLE alice;
      CREATE SEQUENCE app.ticket_seq START 100;
      CREATE TABLE app.customers (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(), email citext UNIQUE NOT NULL, attrs hstore, name text, updated_at timestamptz);
      CREATE INDEX customers_name_trgm ON app.customers USING gin (name gin_trgm_ops);
      CREATE TABLE app.tickets (id bigint PRIMARY KEY DEFAULT nextval('app.ticket_seq'), customer uuid REFERENCES app.customers, body text);
      CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
      CREATE TRIGGER customers_touch BEFORE UPDATE ON app.customers FOR EACH ROW EXECUTE FUNCTION app.touch();
      INSERT INTO app.customers (email, attrs, name) VALUES ('A@x.test', 'tier=>gold', 'Ada'), ('b@x.test', NULL, 'Bob');
      INSERT INTO app.tickets (customer, body) SELECT id, 'hello' FROM app.customers;
      RESET ROLE; SET ROLE bob;
      CREATE VIEW public.ticket_counts AS SELECT 1 AS one;
      CREATE TABLE public.notes (id serial PRIMARY KEY, note text);
      INSERT INTO public.notes (note) VALUES ('n1');
      RESET ROLE;
      GRANT SELECT ON public.notes TO alice;
    `);
    const dump = path.join(dir, 'src.dump');
    await run(`${PGBIN}/pg_dump`, ['-Fc', '-f', dump, src]);
    const target = await newDatabase('restored');
    const { stderr } = await run(`${PGBIN}/pg_restore`, ['--no-owner', '--no-acl', '--exit-on-error', '-d', target.cs, dump]);
    assert.equal(stderr.trim(), '', 'pg_restore printed no error or warning');
    const c = await open(target.cs);
    assert.equal((await one(c, "SELECT count(*)::int AS n FROM app.customers WHERE email = 'a@x.test'")).n, 1, 'citext data');
    assert.equal((await one(c, "SELECT attrs->'tier' AS t FROM app.customers WHERE name = 'Ada'")).t, 'gold');
    assert.equal((await one(c, 'SELECT count(*)::int AS n FROM app.tickets')).n, 2);
    assert.equal((await one(c, "SELECT nextval('app.ticket_seq')::int AS v")).v, 102);
    await c.query("UPDATE app.customers SET name = 'Ada L' WHERE name = 'Ada'");
    assert.ok((await one(c, "SELECT updated_at FROM app.customers WHERE name = 'Ada L'")).updated_at, 'trigger fired');
    assert.equal((await one(c, "SELECT count(*)::int AS n FROM pg_class WHERE relname = 'customers_name_trgm'")).n, 1);
    assert.equal((await one(c, 'SELECT one FROM public.ticket_counts')).one, 1);
  } finally {
    srv.kill('SIGINT');
    await new Promise((r) => { if (srv.exitCode !== null) r(); else srv.once('exit', r); setTimeout(r, 10000); });
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

ctx.itShutsDownCleanly();
