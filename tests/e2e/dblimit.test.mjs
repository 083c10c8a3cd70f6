// The limit on databases per server (issue 12, docs/extensions.md): with
// --databases-per-server 3 a role makes three databases with CREATE DATABASE, the fourth is
// refused with SQLSTATE 53400 and a hint; after a DROP DATABASE one more works; concurrent
// creates at the limit do not overshoot; a restart with another limit reaches the adopted
// server by a reload, and a server whose configuration does not preload pgfleet's module
// (as an older pgfleet started it) is restarted to load it.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, waitReady, uniq } from './lib/api.mjs';
import { connect, closeQuietly, queryFails } from './lib/pg.mjs';
import { until, instanceDir, postmasterPidFile, alive } from './lib/procs.mjs';

const LIMIT = 3;
const ctx = useServer('dblimit', { extraArgs: ['--databases-per-server', String(LIMIT), '--spares', '1', '--backup-interval', '0'] });
const S = { clients: [] };
after(async () => { for (const c of S.clients) await closeQuietly(c); });

async function open() { const c = await connect(S.cs); S.clients.push(c); return c; }
const one = async (c, q, params) => (await c.query(q, params)).rows[0];
// the databases the limit counts: those not owned by a superuser (postgres and template1
// are pgfleet's admin role's)
const userDbs = async (c) => (await c.query('SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE NOT r.rolsuper ORDER BY 1')).rows.map((r) => r.datname);
// a server that is starting or restarting answers after a while
const limitIs = (want) => until(async () => {
  let c;
  try {
    c = await connect(S.cs, { timeoutMs: 3000 });
    return (await one(c, "SELECT current_setting('pgfleet_limits.databases_per_server') AS v")).v === want;
  } catch {
    return false;
  } finally {
    await closeQuietly(c);
  }
}, { timeoutMs: 60000, intervalMs: 200 });

ctx.it('setup: a database; its server carries the limit, which a role cannot change', async () => {
  const p = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('limit') } }), 201).data;
  await waitReady(ctx.c, p.database.id);
  S.db = p.database;
  S.cs = p.database.connections[0].endpoints.direct.connectionString;
  const a = await open();
  assert.equal((await one(a, "SELECT current_setting('pgfleet_limits.databases_per_server') AS v")).v, String(LIMIT));
  const e = await queryFails(a, 'SET pgfleet_limits.databases_per_server = 100', 'SET');
  assert.equal(e.code, '55P02', e.message); // cant_change_runtime_param
  assert.deepEqual(await userDbs(a), []);
});

ctx.it('databases up to the limit; the next is refused with 53400 and a hint; after a DROP one more works', async () => {
  const a = await open();
  for (let i = 1; i <= LIMIT; i++) await a.query(`CREATE DATABASE d${i}`);
  const e = await queryFails(a, 'CREATE DATABASE d_over', 'a create beyond the limit');
  assert.equal(e.code, '53400', e.message);
  assert.equal(e.message, `too many databases: this server allows ${LIMIT} made with CREATE DATABASE`);
  assert.equal(e.detail, `It holds ${LIMIT} beside its own postgres database.`);
  assert.match(e.hint, /DROP DATABASE/);
  assert.deepEqual(await userDbs(a), ['d1', 'd2', 'd3']);
  await a.query('DROP DATABASE d3');
  await a.query('CREATE DATABASE d4');
  assert.equal((await queryFails(a, 'CREATE DATABASE d_over', 'a create beyond the limit')).code, '53400');
  assert.deepEqual(await userDbs(a), ['d1', 'd2', 'd4']);
});

ctx.it('concurrent creates at the limit do not overshoot', async () => {
  const a = await open();
  await a.query('DROP DATABASE d2');
  await a.query('DROP DATABASE d4');
  // one database left: two more fit; eight sessions try at once, each from its own session
  const sessions = [];
  for (let i = 0; i < 8; i++) sessions.push(await open());
  const results = await Promise.all(sessions.map((c, i) => c.query(`CREATE DATABASE race${i}`).then(() => 'made', (err) => err.code)));
  assert.equal(results.filter((r) => r === 'made').length, LIMIT - 1, JSON.stringify(results));
  assert.equal(results.filter((r) => r === '53400').length, 8 - (LIMIT - 1), JSON.stringify(results));
  assert.equal((await userDbs(a)).length, LIMIT);
  for (const c of sessions) await closeQuietly(c);
});

ctx.it('kill -9 and a restart with another limit: the adopted server reloads it', async () => {
  for (const c of S.clients) await closeQuietly(c);
  S.clients = [];
  const pid = postmasterPidFile(ctx.server.home, S.db.id);
  await ctx.server.kill9();
  ctx.server.extraArgs = ctx.server.extraArgs.map((a, i, all) => (all[i - 1] === '--databases-per-server' ? String(LIMIT + 1) : a));
  await ctx.server.start();
  assert.ok(await limitIs(String(LIMIT + 1)), 'the new limit did not reach the server');
  assert.equal(postmasterPidFile(ctx.server.home, S.db.id), pid, 'the same server, adopted and reloaded');
  const a = await open();
  await a.query('CREATE DATABASE one_more');
  assert.equal((await queryFails(a, 'CREATE DATABASE d_over', 'a create beyond the new limit')).code, '53400');
});

ctx.it('a running server whose configuration lacks pgfleet\'s module is restarted on adoption', async () => {
  for (const c of S.clients) await closeQuietly(c);
  S.clients = [];
  const pid = postmasterPidFile(ctx.server.home, S.db.id);
  await ctx.server.kill9();
  // what an older pgfleet wrote: pg_stat_statements alone
  const conf = path.join(instanceDir(ctx.server.home, S.db.id), 'data', 'postgresql.conf');
  const text = fs.readFileSync(conf, 'utf8');
  assert.match(text, /^shared_preload_libraries = 'pg_stat_statements,pgfleet_limits'$/m);
  fs.writeFileSync(conf, text.replace(/^shared_preload_libraries = .*$/m, "shared_preload_libraries = 'pg_stat_statements'"));
  await ctx.server.start();
  assert.ok(await until(() => !alive(pid), { timeoutMs: 60000 }), 'the old server still runs');
  assert.ok(await limitIs(String(LIMIT + 1)), 'the restarted server has no limit');
  assert.match(ctx.server.log(), new RegExp(`the server pid=${pid} lacks pgfleet's preloaded libraries: restarting it`));
  assert.match(fs.readFileSync(conf, 'utf8'), /^shared_preload_libraries = 'pg_stat_statements,pgfleet_limits'$/m);
  const a = await open();
  assert.equal((await queryFails(a, 'CREATE DATABASE d_over', 'a create beyond the limit')).code, '53400');
});

ctx.itShutsDownCleanly();
