// pgfleet benchmark: what the data path costs (issue 11). A pgfleet database reached through
// its direct endpoint (TLS ended in the data path, bytes relayed to the server's Unix socket)
// against a reference PostgreSQL server of the same configuration (pgfleet's generated
// postgresql.conf, the same certificate) that clients reach with TLS straight over TCP: a
// pgfleet server has no TCP listener of its own (its port is the data path's), so the
// reference is a second server with the same settings and data, started beside it.
// Prints pgbench select-only TPS at BENCH_PGBENCH_CLIENTS (16) through each, alternating over
// BENCH_ROUNDS (3) rounds of BENCH_PGBENCH_SECONDS (10), their medians and ratio, the
// microseconds the data path adds per query (pgbench's average latency, through minus
// straight), and new-connection latency (TLS + SCRAM + SELECT 1 + close) p50/p99 both ways.
import { spawn, execFileSync } from 'node:child_process';
import { openSync, readFileSync, writeFileSync, mkdirSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { benchServer, freePort, root, sleep, pct } from './lib.mjs';

const pg = createRequire(join(root, 'tests/e2e/package.json'))('pg');
const pgbin = process.env.BENCH_PG_BINDIR ?? '/usr/lib/postgresql/15/bin';
const CLIENTS = Number(process.env.BENCH_PGBENCH_CLIENTS ?? 16);
const SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SCALE = Number(process.env.BENCH_PGBENCH_SCALE ?? 10);
const N_CONNECT = Number(process.env.BENCH_CONNECTS ?? 100);
const asRoot = process.getuid() === 0;
const asPg = (argv) => (asRoot ? ['runuser', ['-u', 'postgres', '--', ...argv]] : [argv[0], argv.slice(1)]);

const server = await benchServer({ name: 'dp', ports: 10, flags: ['--suspend-after', '0', '--backup-interval', '0', '--usage-interval', '0'] });
const { home } = server;
const refPort = await freePort();
const api = (method, path, body) => server.api(method, path, body);
const pgbench = (args, cs) => execFileSync('pgbench', [...args, cs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
const median = (xs) => pct(xs, 50);

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

let ref = null;
const refDir = join(home, 'ref');
try {
  await server.start();
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench-datapath' });
  const db = project.database;
  for (;;) {
    const { data } = await api('GET', `/v1/databases/${db.id}`);
    if (data.status === 'ready') break;
    await sleep(20);
  }
  const through = db.connections[0].endpoints.direct.connectionString;
  const pass = decodeURIComponent(new URL(through).password);
  // the reference server: same settings, TCP with TLS, SCRAM
  mkdirSync(refDir);
  writeFileSync(join(home, 'refpw'), pass);
  if (asRoot) execFileSync('chown', ['-R', 'postgres', refDir, join(home, 'refpw')]);
  const [c0, a0] = asPg([join(pgbin, 'initdb'), '-D', join(refDir, 'data'), '-U', 'bench', `--pwfile=${join(home, 'refpw')}`,
    '--auth-host=scram-sha-256', '--auth-local=trust', '--wal-segsize=1']); // as the golden's
  execFileSync(c0, a0, { stdio: 'ignore' });
  // the database's server is an instance of a neutral id: run/<database id> links to its
  // socket directory run/<instance id>
  const inst = readlinkSync(join(home, 'run', db.id));
  const conf = readFileSync(join(home, 'instances', inst, 'data', 'postgresql.conf'), 'utf8').split('\n')
    .filter((l) => !/^(listen_addresses|port|unix_socket_directories|archive_|restore_command)/.test(l)).join('\n');
  writeFileSync(join(refDir, 'data', 'postgresql.conf'), `${conf}\nlisten_addresses = '127.0.0.1'\nport = ${refPort}\nunix_socket_directories = '${refDir}'\narchive_mode = off\n`);
  if (asRoot) execFileSync('chown', ['postgres', join(refDir, 'data', 'postgresql.conf')]);
  const [c1, a1] = asPg([join(pgbin, 'postgres'), '-D', join(refDir, 'data')]);
  const log = openSync(join(home, 'ref.log'), 'a');
  ref = spawn(c1, a1, { stdio: ['ignore', log, log] });
  const straight = `postgresql://bench:${encodeURIComponent(pass)}@127.0.0.1:${refPort}/postgres?sslmode=require`;
  for (let i = 0; ; i++) {
    if (ref.exitCode !== null || i === 400) throw new Error('the reference server did not start (see ref.log)');
    try { execFileSync('pg_isready', ['-q', '-d', straight]); break; } catch { await sleep(50); }
  }
  for (const cs of [through, straight]) execFileSync('pgbench', ['-i', '-q', '-s', String(SCALE), cs], { stdio: 'ignore' });
  const tps = { through: [], straight: [] }, lat = { through: [], straight: [] };
  for (const cs of [through, straight]) pgbench(['-S', '-n', '-c', '2', '-j', '2', '-T', '2'], cs); // warm up
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, cs] of [['through', through], ['straight', straight]]) {
      const out = pgbench(['-S', '-n', '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS)], cs);
      tps[name].push(Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]));
      lat[name].push(Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]));
    }
  }
  const m = { through: median(tps.through), straight: median(tps.straight) };
  console.log(`pgbench -S -c ${CLIENTS} -j 2 -T ${SECONDS} (scale ${SCALE}), median of ${ROUNDS} alternating rounds: TLS through the data path ${m.through.toFixed(0)} tps [${tps.through.map((x) => x.toFixed(0)).join(', ')}], TLS straight to a server ${m.straight.toFixed(0)} tps [${tps.straight.map((x) => x.toFixed(0)).join(', ')}]`);
  console.log(`through/straight TPS ratio: ${(m.through / m.straight).toFixed(2)}; added per query: ${((median(lat.through) - median(lat.straight)) * 1000).toFixed(0)} us (pgbench average latency ${median(lat.through)} vs ${median(lat.straight)} ms)`);
  const compat = (cs) => cs.replace(/\?.*$/, '?sslmode=require&uselibpqcompat=true');
  for (const [name, cs] of [['through the data path', through], ['straight to a server', straight]]) {
    await connectLatency(compat(cs));
    const t = await connectLatency(compat(cs));
    console.log(`new connection (TLS + SCRAM + SELECT 1 + close) ${name}, ${N_CONNECT} sequential: p50 ${pct(t, 50).toFixed(1)} ms, p99 ${pct(t, 99).toFixed(1)} ms`);
  }
} finally {
  // SIGTERM: runuser passes it on to the server (a smart shutdown; its clients are gone)
  if (ref && ref.exitCode === null && ref.signalCode === null) { ref.kill('SIGTERM'); await new Promise((r) => ref.on('exit', r)); }
  await server.close();
}
