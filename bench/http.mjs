// HTTP figures (issue 10), printed, not pass/fail. Run through `make bench` (bench/run.sh) or
// alone: `node bench/http.mjs` (PGFLEET_BIN=/path/to/pgfleet for another binary).
//  1. While 2,000 idle and 1,000 slowloris connections (one header byte a second) are held
//     from 127.0.0.2 and up (40 per address, reopened when the server closes them, as an
//     attacker would): GET /v1/databases/{id} p50/p99 from a normal client, its failures, and
//     the server's RSS and threads.
//  2. GET /v1/databases/{id} requests/s with wrk at 32 and 1,000 keep-alive connections, next
//     to nginx serving a static file of the same size in the same run (the ratio to nginx),
//     BENCH_WRK_ROUNDS rounds (default 3) alternating the two; the medians.
// The server runs with --http-max-per-address 0 (wrk's 1,000 connections share 127.0.0.1)
// and --http-max-connections 8192, when the binary takes those flags.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { benchServer, bin, freePort, sleep, pct, takes } from './lib.mjs';

const IDLE = Number(process.env.BENCH_IDLE ?? 2000);
const SLOW = Number(process.env.BENCH_SLOW ?? 1000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);
const WRK_SECONDS = Number(process.env.BENCH_WRK_SECONDS ?? 10);
const WRK_ROUNDS = Number(process.env.BENCH_WRK_ROUNDS ?? 3);

function status(pid) {
  const t = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssMiB: Number(/VmRSS:\s+(\d+)/.exec(t)[1]) / 1024, threads: Number(/Threads:\s+(\d+)/.exec(t)[1]) };
}

// n connections from 127.0.0.<first>.. (perAddress each), reopened when closed
function holdMany(port, n, { mode, first, perAddress = 40 }) {
  const socks = new Set();
  let stopped = false;
  let opened = 0;
  const open = (i) => {
    if (stopped) return;
    const s = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${first + Math.floor(i / perAddress)}` });
    let timer;
    s.on('error', () => {});
    s.on('data', () => {});
    s.once('connect', () => {
      opened++;
      if (mode === 'slowloris') {
        s.write('GET /v1/regions HTTP/1.1\r\nHost: pgfleet\r\n');
        timer = setInterval(() => s.write('X'), 1000);
      }
    });
    s.on('close', () => { clearInterval(timer); socks.delete(s); setTimeout(() => open(i), 200); });
    socks.add(s);
  };
  for (let i = 0; i < n; i++) open(i);
  return {
    live: () => [...socks].filter((s) => !s.connecting && !s.destroyed).length,
    opened: () => opened,
    stop: () => { stopped = true; for (const s of socks) s.destroy(); },
  };
}

function wrk(url, conns, headers = []) {
  const args = ['-t2', `-c${conns}`, `-d${WRK_SECONDS}s`, '--timeout', '5s', '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const out = execFileSync('wrk', args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  const num = (re) => { const m = re.exec(out); return m ? m[1] : '0'; };
  return {
    cmd: `wrk ${args.map((a) => (a.includes(' ') ? `'${a.replace(/Bearer \S+/, 'Bearer $TOKEN')}'` : a)).join(' ')}`,
    rps: Number(num(/Requests\/sec:\s+([\d.]+)/)),
    p50: num(/\s50%\s+(\S+)/),
    p99: num(/\s99%\s+(\S+)/),
    timeouts: Number(num(/timeout (\d+)/)),
    errors: num(/Socket errors: (.*)/) || 'none',
    non2xx: Number(num(/Non-2xx or 3xx responses: (\d+)/)),
  };
}

// the new limits would refuse wrk's load from one address with one token: lift them (an older
// binary has neither flag)
const server = await benchServer({ name: 'http', ports: 20, unlimited: true,
  flags: ['--spares', '1', ...(takes('--http-max-per-address') ? ['--http-max-per-address', '0', '--http-max-connections', '8192'] : [])] });
const { home, port, base, token, H } = server;
const api = (method, path, body) => server.api(method, path, body);
let nginx;

try {
  await server.start();
  console.log(`# http bench: ${bin} ${server.args.join(' ')}`);
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench-http', createDatabase: false });
  const { data: db } = await api('POST', '/v1/databases', { projectId: project.id, name: 'bench-http' });
  for (;;) { const { data } = await api('GET', `/v1/databases/${db.id}`); if (data.status === 'ready') break; await sleep(100); }
  // the first full backup (pgBackRest) would share the cores with what is measured
  for (let i = 0; i < 600; i++) {
    const { data } = await api('GET', `/v1/databases/${db.id}/backups`);
    if (data.length && data.every((b) => b.status !== 'running')) break;
    await sleep(200);
  }
  const url = `${base}/v1/databases/${db.id}`;
  const body = await (await fetch(url, { headers: H })).text();
  const before = status(server.pid);

  // 1. under held connections
  const idle = holdMany(port, IDLE, { mode: 'idle', first: 2 });
  const slow = holdMany(port, SLOW, { mode: 'slowloris', first: 2 + Math.ceil(IDLE / 40) + 5 });
  await sleep(4000);
  const lat = [];
  let failed = 0;
  let peak = status(server.pid);
  let heldMin = Infinity;
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now();
    try {
      const r = await fetch(url, { headers: H, signal: AbortSignal.timeout(5000) });
      await r.text();
      if (r.status !== 200) failed++;
      else lat.push(performance.now() - t);
    } catch { failed++; }
    if (i % 20 === 0) {
      const st = status(server.pid);
      if (st.rssMiB > peak.rssMiB) peak = { ...peak, rssMiB: st.rssMiB };
      if (st.threads > peak.threads) peak = { ...peak, threads: st.threads };
      heldMin = Math.min(heldMin, idle.live() + slow.live());
    }
    await sleep(20);
  }
  const held = idle.live() + slow.live();
  console.log(`held ${IDLE} idle + ${SLOW} slowloris (from 127.0.0.2+, reopened when closed): ${held} open at the end, at least ${heldMin} during the samples`);
  console.log(`  GET /v1/databases/{id} from a normal client (${SAMPLES} sequential): p50 ${pct(lat, 50).toFixed(1)} ms, p99 ${pct(lat, 99).toFixed(1)} ms, failed ${failed}`);
  console.log(`  server: RSS ${before.rssMiB.toFixed(1)} MiB before, peak ${peak.rssMiB.toFixed(1)} MiB; threads ${before.threads} before, peak ${peak.threads}`);
  idle.stop();
  slow.stop();
  await sleep(2000);

  // 2. wrk against pgfleet and nginx (a static file of the same size)
  const nport = await freePort();
  const ndir = join(home, 'nginx');
  mkdirSync(join(ndir, 'www', 'db'), { recursive: true });
  writeFileSync(join(ndir, 'www', 'db', 'item'), body);
  writeFileSync(join(ndir, 'nginx.conf'), `daemon off; worker_processes auto; pid ${ndir}/nginx.pid; error_log ${ndir}/error.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 75s; default_type application/json;
  server { listen 127.0.0.1:${nport}; root ${ndir}/www; } }
`);
  nginx = spawn('nginx', ['-c', join(ndir, 'nginx.conf'), '-p', ndir], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) { try { if ((await fetch(`http://127.0.0.1:${nport}/db/item`)).ok) break; } catch {} await sleep(50); }
  console.log(`wrk, GET /v1/databases/{id} (${Buffer.byteLength(body)} bytes) vs nginx serving a static file of that size (worker_processes auto):`);
  // rounds alternate the two (the machine is shared): the median of their ratios
  const ms = (t) => Number.parseFloat(t) * ({ us: 0.001, ms: 1, s: 1000 }[/[a-z]+$/.exec(t)?.[0]] ?? 1);
  for (const c of [32, 1000]) {
    const ratios = [], p99a = [], p99n = [];
    for (let r = 1; r <= WRK_ROUNDS; r++) {
      const a = wrk(url, c, [`Authorization: Bearer ${token}`]);
      const st = status(server.pid);
      const n = wrk(`http://127.0.0.1:${nport}/db/item`, c, [`Authorization: Bearer ${token}`]);
      ratios.push(a.rps / n.rps);
      p99a.push(ms(a.p99));
      p99n.push(ms(n.p99));
      console.log(`  ${c} connections, round ${r}: pgfleet ${a.rps.toFixed(0)} req/s (p50 ${a.p50}, p99 ${a.p99}, timeouts ${a.timeouts}, non-2xx ${a.non2xx}, socket errors ${a.errors}; RSS ${st.rssMiB.toFixed(1)} MiB, ${st.threads} threads), ` +
        `nginx ${n.rps.toFixed(0)} req/s (p50 ${n.p50}, p99 ${n.p99}, timeouts ${n.timeouts}): ratio ${(a.rps / n.rps).toFixed(2)}`);
      if (r === 1) console.log(`    ${a.cmd}`);
    }
    console.log(`  ${c} connections, median of ${WRK_ROUNDS} rounds: ratio ${pct(ratios, 50).toFixed(2)}, p99 pgfleet ${pct(p99a, 50).toFixed(1)} ms, nginx ${pct(p99n, 50).toFixed(1)} ms`);
  }
} finally {
  if (nginx) { nginx.kill('SIGQUIT'); await sleep(300); }
  await server.close();
}
