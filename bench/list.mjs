// A page of 100 next to a single read (issue figure, not pass/fail): with N databases,
// single-client p50 of `GET /v1/databases?limit=100` (a full page, from the middle of the
// list through a cursor) and of `GET /v1/databases/{id}`, and their ratio (aim: at most 2x).
// Each database is a real PostgreSQL server: N is what the machine's memory and disk allow.
//   BENCH_LIST_DBS (default 2000), BENCH_LIST_SAMPLES (default 300), BENCH_LIST_ROUNDS
//   (default 5; the median of their ratios), PGFLEET_BIN
//   BENCH_LIST_SUSPEND (seconds; default 0: never): --suspend-after, so that many databases
//   fit asleep; BENCH_LIST_SPARES (default 4); BENCH_LIST_COLD (default 50): cold pages a
//   round, each after a rename of the project, which changes every item (none kept)
// The rounds start once no first backup is queued or running (they would share the cores).
// Creates wait while more than BENCH_LIST_MAX_AWAKE (default 200) databases are awake: a new
// one stays awake until its first backup and its idle time (with 2,000 unthrottled, about
// 1,000 servers ran at once and memory ran out).
import { readFileSync } from 'node:fs';
import { benchServer, sleep, pct } from './lib.mjs';

const N = Number(process.env.BENCH_LIST_DBS ?? 2000);
const SAMPLES = Number(process.env.BENCH_LIST_SAMPLES ?? 300);
const ROUNDS = Number(process.env.BENCH_LIST_ROUNDS ?? 5);
const SUSPEND = process.env.BENCH_LIST_SUSPEND ?? '0';
const SPARES = process.env.BENCH_LIST_SPARES ?? '4';
const MAX_AWAKE = Number(process.env.BENCH_LIST_MAX_AWAKE ?? 200);
const COLD = Number(process.env.BENCH_LIST_COLD ?? 50);

// a port per database (others on this host may hold some); one token for every request: no
// rate limit
const server = await benchServer({ name: 'list', ports: N + 500, unlimited: true, metrics: true,
  flags: ['--backup-interval', '0', '--workers', '4', '--spares', SPARES, '--suspend-after', SUSPEND] });
const { base, H } = server;
const api = (method, path, body) => server.api(method, path, body);
async function timed(path) {
  const t0 = performance.now();
  const r = await fetch(base + path, { headers: H });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`${path} -> ${r.status}`);
  return performance.now() - t0;
}

try {
  await server.start();
  const { data: project } = await api('POST', '/v1/projects', { name: 'bench-list', createDatabase: false });
  const ids = [];
  const t0 = Date.now();
  const metric = async (name) => (await server.metrics()).get(name) ?? NaN;
  for (let i = 0; i < N; i += 8) {
    for (let k = 0; k < 600 && (await metric('pgfleet_databases_awake')) > MAX_AWAKE; k++) await sleep(1000);
    const batch = [];
    for (let j = i; j < Math.min(N, i + 8); j++) batch.push(api('POST', '/v1/databases', { projectId: project.id, name: `list-${j}` }));
    for (const r of await Promise.all(batch)) ids.push(r.data.id);
    if (ids.length % 200 === 0) console.log(`list: ${ids.length}/${N} databases created (${Math.round((Date.now() - t0) / 1000)} s)`);
  }
  // measured on a quiet fleet: every database ready (no provisioning in the background)
  for (let ready = 0; ready < ids.length;) {
    ready = 0;
    let cursor_;
    do {
      const page_ = await api('GET', `/v1/databases?limit=100${cursor_ ? `&cursor=${cursor_}` : ''}`);
      ready += page_.data.filter((d) => d.status === 'ready').length;
      cursor_ = page_.pagination.hasMore ? page_.pagination.nextCursor : null;
    } while (cursor_);
    if (ready < ids.length) await sleep(1000);
  }
  console.log(`list: ${ids.length} databases ready (${Math.round((Date.now() - t0) / 1000)} s)`);
  const backupsQueued = async () => (await metric('pgfleet_ops_queued{kind="db_backup",state="pending"}')) +
    (await metric('pgfleet_ops_queued{kind="db_backup",state="running"}'));
  for (let q; (q = await backupsQueued()) > 0;) {
    console.log(`list: ${q} first backups queued or running (${Math.round((Date.now() - t0) / 1000)} s)`);
    await sleep(30000);
  }
  // every page full: from a cursor in the middle of the list
  const cursor = ids[Math.floor(ids.length / 2) - 100] ?? ids[0];
  const one = ids[Math.floor(ids.length / 2)];
  for (let i = 0; i < 20; i++) { await timed(`/v1/databases?limit=100&cursor=${cursor}`); await timed(`/v1/databases/${one}`); }
  const cpuMs = () => { const f = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 1000 / 100; };
  const ratios = [];
  const coldRatios = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const page = [];
    const single = [];
    for (let i = 0; i < SAMPLES; i++) {
      page.push(await timed(`/v1/databases?limit=100&cursor=${cursor}`));
      single.push(await timed(`/v1/databases/${one}`));
    }
    // the server's own CPU per request (utime + stime), steadier than latency on a shared machine
    const c0 = cpuMs();
    for (let i = 0; i < SAMPLES; i++) await timed(`/v1/databases/${one}`);
    const c1 = cpuMs();
    for (let i = 0; i < SAMPLES; i++) await timed(`/v1/databases?limit=100&cursor=${cursor}`);
    const c2 = cpuMs();
    // a cold page: its project renamed first, so no item's text is kept (each is read and
    // written again); the rename is not timed
    const cold = [];
    for (let i = 0; i < COLD; i++) {
      await api('PATCH', `/v1/projects/${project.id}`, { name: `bench-list-${round}-${i}` });
      cold.push(await timed(`/v1/databases?limit=100&cursor=${cursor}`));
    }
    const p50p = pct(page, 50);
    const p50s = pct(single, 50);
    ratios.push(p50p / p50s);
    coldRatios.push(pct(cold, 50) / p50s);
    console.log(`list: round ${round}: ${ids.length} databases; GET /v1/databases?limit=100 p50 ${p50p.toFixed(2)} ms (p99 ${pct(page, 99).toFixed(2)}), GET /v1/databases/{id} p50 ${p50s.toFixed(2)} ms (p99 ${pct(single, 99).toFixed(2)}); ratio ${(p50p / p50s).toFixed(2)}x; ` +
      `server CPU per request ${((c2 - c1) / SAMPLES).toFixed(2)} ms vs ${((c1 - c0) / SAMPLES).toFixed(2)} ms (background work included); ` +
      `cold page (every item changed) p50 ${pct(cold, 50).toFixed(2)} ms, ratio ${(pct(cold, 50) / p50s).toFixed(2)}x`);
  }
  console.log(`list: ${ids.length} databases, ${ROUNDS} rounds of ${SAMPLES}: median ratio of p50s ${pct(ratios, 50).toFixed(2)}x (aim: at most 2x); a cold page's ${pct(coldRatios, 50).toFixed(2)}x`);
} finally {
  await server.close();
}
