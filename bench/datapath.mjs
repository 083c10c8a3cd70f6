// pgfleet benchmark: what the data path costs (issue 11). One pgfleet database, one postmaster,
// reached two ways in the same run:
//  - through: its direct endpoint (TLS ended in the data path, bytes relayed to the server's
//    Unix socket), as every client reaches it;
//  - straight: TLS over TCP to the same server, on a test-only listener: a loopback address
//    of its own (127.x.y.z, never 127.0.0.1, on port 5432, the number its socket is named
//    after) set with ALTER SYSTEM SET listen_addresses as pgfleet's admin role over the
//    server's socket; the server reads it when it starts, so the bench lets the database
//    sleep and wakes it (pgfleet's own stop and start: the data path and serve see an
//    ordinary sleep and wake) and holds a connection through the data path so that it stays
//    awake while the straight runs pass the data path by. The generated pg_hba.conf already
//    admits TLS with SCRAM from any address (hostssl), and ssl is on with pgfleet's
//    certificate, so the straight listener is TLS like the data path's. At the end the
//    setting is reset, and a sleep and a wake put the server back on its socket alone.
// Prints, over BENCH_ROUNDS (3) rounds that alternate the two ways: pgbench select-only TPS at
// BENCH_PGBENCH_CLIENTS (16) for BENCH_PGBENCH_SECONDS (10) each way, the median of the
// rounds' TPS ratios (through / straight), the median of the microseconds the data path adds
// per query (pgbench's average latency, through minus straight), and new-connection latency
// (TLS + SCRAM + SELECT 1 + close, BENCH_CONNECTS sequential each way per round): medians of
// the rounds' p50 and p99.
import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { benchServer, root, sleep, pct } from './lib.mjs';

const pg = createRequire(join(root, 'tests/e2e/package.json'))('pg');
const CLIENTS = Number(process.env.BENCH_PGBENCH_CLIENTS ?? 16);
const SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SCALE = Number(process.env.BENCH_PGBENCH_SCALE ?? 10);
const N_CONNECT = Number(process.env.BENCH_CONNECTS ?? 100);
const SERVER_PORT = 5432; // every server's port number (its socket's name): the TCP listener shares it

const server = await benchServer({ name: 'dp', ports: 10, metrics: true,
  flags: ['--suspend-after', '2', '--backup-interval', '0', '--usage-interval', '0'] });
const { home } = server;
const api = (method, path, body) => server.api(method, path, body);
const pgbench = (args, cs) => execFileSync('pgbench', [...args, cs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
const median = (xs) => pct(xs, 50);
// pgbench's summary lines (the last of each: progress lines, -P, have another form)
const last = (re, out) => { const m = [...out.matchAll(re)]; return m.length ? Number(m.at(-1)[1]) : NaN; };
// the pg module verifies the certificate for sslmode=require unless told to do as libpq does
const compat = (cs) => cs.replace(/\?.*$/, '?sslmode=require&uselibpqcompat=true');

async function connectLatency(cs) {
  const times = [];
  for (let i = 0; i < N_CONNECT; i++) {
    const t0 = performance.now();
    const c = new pg.Client({ connectionString: cs });
    await c.connect();
    await c.query('SELECT 1');
    await c.end();
    times.push(performance.now() - t0);
  }
  return times;
}

// a loopback address that nothing listens on at port 5432 (127.0.0.1 may have a server of its
// own; 127.0.0.2 is the tests' "remote" address)
async function freeLoopback() {
  for (let i = 0; i < 50; i++) {
    const addr = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
    const free = await new Promise((r) => {
      const s = createServer();
      s.once('error', () => r(false));
      s.listen(SERVER_PORT, addr, () => s.close(() => r(true)));
    });
    if (free) return addr;
  }
  throw new Error(`no loopback address with port ${SERVER_PORT} free (a server listening on *:${SERVER_PORT} takes every one)`);
}

let held = null;
let sockdir = null;
let changed = false;
async function admin(sql) {
  const c = new pg.Client({ host: sockdir, port: SERVER_PORT, user: 'pgfleet_admin', database: 'postgres' });
  await c.connect();
  try { return (await c.query(typeof sql === 'function' ? sql(c) : sql)).rows; } finally { await c.end(); }
}
const gauge = async (name) => (await server.metrics()).get(name);
async function waitAsleep(inst) {
  for (let i = 0; i < 600; i++, await sleep(100)) {
    if ((await gauge('pgfleet_databases_asleep')) >= 1 && existsSync(join(home, 'instances', inst, 'asleep'))) return;
  }
  throw new Error('the database did not fall asleep in 60 s');
}
async function connectHeld(cs) {
  const c = new pg.Client({ connectionString: compat(cs) });
  await c.connect();
  return c;
}

try {
  await server.start();
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench-datapath' });
  const db = project.database; // the create's answer: the only one that carries the password
  await server.waitReady(db.id);
  const through = db.connections[0].endpoints.direct.connectionString;
  const u = new URL(through);
  // the database's server is an instance of a neutral id: run/<database id> links to its
  // socket directory run/<instance id>
  const inst = readlinkSync(join(home, 'run', db.id)).split('/').pop();
  sockdir = join(home, 'run', inst);
  const addr = await freeLoopback();
  const straight = `postgresql://${u.username}:${u.password}@${addr}:${SERVER_PORT}${u.pathname}?sslmode=require`;

  // the test-only listener: set, then a sleep and a wake (pgfleet's stop and start)
  const wakes0 = await gauge('pgfleet_wakes_total');
  await admin((c) => `ALTER SYSTEM SET listen_addresses = ${c.escapeLiteral(addr)}`);
  changed = true;
  await waitAsleep(inst);
  held = await connectHeld(through); // wakes it, and keeps it awake (a direct client)
  const [{ listen_addresses: la, started }] = (await held.query("SELECT current_setting('listen_addresses') AS listen_addresses, pg_postmaster_start_time()::text AS started")).rows;
  if (la !== addr) throw new Error(`the woken server listens on '${la}', not '${addr}'`);
  execFileSync('pg_isready', ['-q', '-d', straight]);
  const s = await connectHeld(straight);
  const [{ started: started2, ssl }] = (await s.query('SELECT pg_postmaster_start_time()::text AS started, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows;
  await s.end();
  if (started2 !== started || !ssl) throw new Error(`straight reached a server started ${started2} (ssl ${ssl}), through one started ${started}`);
  const { data: seen } = await api('GET', `/v1/databases/${db.id}`);
  console.log(`test-only listener: ${addr}:${SERVER_PORT} (TLS) on the postmaster started ${started}, after a sleep and a wake by pgfleet ` +
    `(wakes ${wakes0} -> ${await gauge('pgfleet_wakes_total')}, API status ${seen.status}, awake ${await gauge('pgfleet_databases_awake')}); one connection held through the data path keeps it awake`);

  execFileSync('pgbench', ['-i', '-q', '-s', String(SCALE), through], { stdio: 'ignore' });
  for (const cs of [through, straight]) pgbench(['-S', '-n', '-c', '2', '-j', '2', '-T', '2'], cs); // warm up
  const tps = { through: [], straight: [] }, lat = { through: [], straight: [] };
  const conn = { through: { p50: [], p99: [] }, straight: { p50: [], p99: [] } };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 ? [['straight', straight], ['through', through]] : [['through', through], ['straight', straight]];
    for (const [name, cs] of order) {
      const out = pgbench(['-S', '-n', '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS)], cs);
      tps[name].push(last(/^tps = ([\d.]+)/gm, out));
      lat[name].push(last(/^latency average = ([\d.]+) ms/gm, out));
    }
    for (const [name, cs] of order) {
      const t = await connectLatency(compat(cs));
      conn[name].p50.push(pct(t, 50));
      conn[name].p99.push(pct(t, 99));
    }
    console.log(`round ${r + 1}: through ${tps.through[r].toFixed(0)} tps (${lat.through[r]} ms), straight ${tps.straight[r].toFixed(0)} tps (${lat.straight[r]} ms), ratio ${(tps.through[r] / tps.straight[r]).toFixed(2)}; ` +
      `new connection p50 through ${conn.through.p50[r].toFixed(1)} ms, straight ${conn.straight.p50[r].toFixed(1)} ms`);
  }
  const ratios = tps.through.map((x, i) => x / tps.straight[i]);
  const added = lat.through.map((x, i) => (x - lat.straight[i]) * 1000);
  console.log(`pgbench -S -c ${CLIENTS} -j 2 -T ${SECONDS} (scale ${SCALE}), ${ROUNDS} alternating rounds, one postmaster: TLS through the data path ${median(tps.through).toFixed(0)} tps [${tps.through.map((x) => x.toFixed(0)).join(', ')}], ` +
    `TLS straight to the same server ${median(tps.straight).toFixed(0)} tps [${tps.straight.map((x) => x.toFixed(0)).join(', ')}] (medians)`);
  console.log(`through/straight TPS ratio, median of the rounds: ${median(ratios).toFixed(2)} [${ratios.map((x) => x.toFixed(2)).join(', ')}]; ` +
    `added per query, median of the rounds: ${median(added).toFixed(0)} us [${added.map((x) => x.toFixed(0)).join(', ')}] (pgbench average latency)`);
  for (const [name, k] of [['through the data path', 'through'], ['straight to the server', 'straight']]) {
    console.log(`new connection (TLS + SCRAM + SELECT 1 + close) ${name}, ${N_CONNECT} sequential per round: p50 ${median(conn[k].p50).toFixed(1)} ms, p99 ${median(conn[k].p99).toFixed(1)} ms (medians of ${ROUNDS} rounds)`);
  }

  // put it back: the setting reset, a sleep and a wake, the server on its socket alone
  await admin('ALTER SYSTEM RESET listen_addresses');
  await held.end();
  held = null;
  await waitAsleep(inst);
  held = await connectHeld(through);
  const [{ listen_addresses: back }] = (await held.query("SELECT current_setting('listen_addresses') AS listen_addresses")).rows;
  await held.end();
  held = null;
  const auto = readFileSync(join(home, 'instances', inst, 'data', 'postgresql.auto.conf'), 'utf8');
  let refused = false;
  try { execFileSync('pg_isready', ['-q', '-t', '3', '-d', straight]); } catch { refused = true; }
  if (back !== '' || /listen_addresses/.test(auto) || !refused) throw new Error(`not put back: listen_addresses '${back}', ${addr} refused ${refused}`);
  changed = false;
  console.log(`put back: listen_addresses '' again after a sleep and a wake (no TCP listener, ${addr}:${SERVER_PORT} refused, postgresql.auto.conf without it)`);
} finally {
  if (held) await held.end().catch(() => {});
  if (changed) await admin('ALTER SYSTEM RESET listen_addresses').catch(() => {});
  if (process.env.BENCH_KEEP) await server.stop();
  else await server.close();
}
