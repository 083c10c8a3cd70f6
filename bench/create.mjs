// Create-to-ready from the warm pool (issue figure, not pass/fail): N sequential creates
// (POST /v1/databases, then GET until ready; the op is part of it) on a server with
// --spares S, p50 and p99; beside them, from the server's own log of the same run, each
// provision's steps (taking the spare, the server's start or restart, the role create) and
// how many creates took a started spare, and where each create's time goes (the POST, the
// op's pick-up by a worker, the provision, its ready commit, the client's polling: the
// server log's stamps against the client's clock, both wall time). Then the same with
// --spares 0 (a copy of the golden and a cold start per create) for the ratio.
//   BENCH_CREATES (default 100), BENCH_SPARES (default 4), PGFLEET_BIN
import { readFileSync } from 'node:fs';
import { benchServer, sleep, pct } from './lib.mjs';

const N = Number(process.env.BENCH_CREATES ?? 100);
const SPARES = Number(process.env.BENCH_SPARES ?? 4);

async function round(spares) {
  // no scheduled backups: the first full backup of each new database still runs (slow lane)
  const server = await benchServer({ name: 'create', ports: N + 50, metrics: true, unlimited: true, flags: ['--spares', String(spares)] });
  const { logPath } = server;
  const api = (method, path, body) => server.api(method, path, body);
  const metric = async (name) => (await server.metrics()).get(name) ?? NaN;
  try {
    await server.start();
    const { data: project } = await api('POST', '/v1/projects', { name: 'bench-create', createDatabase: false });
    const times = [];
    const walls = new Map(); // database id -> { t0, posted, seen } (wall ms)
    for (let i = 0; i < N; i++) {
      // a full pool before each create: the figure is the warm path, not the refill's pace
      for (let w = 0; spares && w < 600 && (await metric('pgfleet_spares_ready')) < spares; w++) await sleep(50);
      const t0 = performance.now();
      const w0 = Date.now();
      const { data } = await api('POST', '/v1/databases', { projectId: project.id, name: `c-${i}` });
      const posted = Date.now();
      for (;;) {
        const { data: d } = await api('GET', `/v1/databases/${data.id}`);
        if (d.status === 'ready') break;
        if (d.status === 'failure') throw new Error(`database ${data.id} failed`);
        await sleep(2);
      }
      times.push(performance.now() - t0);
      walls.set(data.id, { t0: w0, posted, seen: Date.now() });
    }
    const taken = await metric('pgfleet_spares_taken_total');
    const reloads = await metric('pgfleet_pooler_reloads_total');
    const steps = { attach: [], start: [], roles: [] };
    const stamps = new Map(); // database id -> { picked, roled, ready } (wall ms, server log)
    const at = (id) => stamps.get(id) ?? stamps.set(id, {}).get(id);
    for (const l of readFileSync(logPath, 'utf8').split('\n')) {
      const m = /provision steps: attach (\d+) ms, create\+start (\d+) ms, roles (\d+) ms/.exec(l);
      if (m) { steps.attach.push(+m[1]); steps.start.push(+m[2]); steps.roles.push(+m[3]); }
      const s = /^ts=(\S+) .*\bdb=(db_\w+) .*msg="(db_provision: attempt 1|provision steps|status provisioning -> ready)/.exec(l);
      if (s) at(s[2])[{ d: 'picked', p: 'roled', s: 'ready' }[s[3][0]]] = Date.parse(s[1]);
    }
    // each create's time in parts: POST answered; op picked up after the answer; provision
    // (attach, start, roles); the ready commit; the client's next GET that saw it
    const parts = { post: [], pickup: [], provision: [], ready: [], seen: [] };
    for (const [id, w] of walls) {
      const s = stamps.get(id);
      if (!s?.picked || !s.roled || !s.ready) continue;
      parts.post.push(w.posted - w.t0);
      parts.pickup.push(s.picked - w.posted);
      parts.provision.push(s.roled - s.picked);
      parts.ready.push(s.ready - s.roled);
      parts.seen.push(w.seen - s.ready);
    }
    const made = readFileSync(logPath, 'utf8').split('\n').map((l) => /made spare \S+ in (\d+) ms/.exec(l)).filter(Boolean).map((m) => +m[1]);
    return { times, taken, reloads, steps, made, parts };
  } finally {
    await server.close();
  }
}

const fmt = (xs) => `p50 ${pct(xs, 50).toFixed(0)} ms, p99 ${pct(xs, 99).toFixed(0)} ms`;
const warm = await round(SPARES);
console.log(`create-to-ready, ${N} sequential creates, --spares ${SPARES}: ${fmt(warm.times)} (max ${Math.max(...warm.times).toFixed(0)} ms); ${warm.taken} took a started spare; ${warm.reloads} PgBouncer reloads`);
console.log(`  provision steps (server log): take spare ${fmt(warm.steps.attach)}; server create+start ${fmt(warm.steps.start)}; role create ${fmt(warm.steps.roles)}`);
const p50s = (xs) => `${pct(xs, 50).toFixed(0)} (${pct(xs, 99).toFixed(0)})`;
if (warm.parts.post.length) console.log(`  where a create's time goes, p50 (p99) ms: POST ${p50s(warm.parts.post)}; op picked up after the answer ${p50s(warm.parts.pickup)}; provision ${p50s(warm.parts.provision)}; ready commit ${p50s(warm.parts.ready)}; seen by the client's GET ${p50s(warm.parts.seen)}`);
if (warm.made.length) console.log(`  making one spare in the background (copy, stanza-create, start): ${fmt(warm.made)}`);
const cold = await round(0);
console.log(`create-to-ready, ${N} sequential creates, --spares 0: ${fmt(cold.times)}; server create+start ${fmt(cold.steps.start)}; role create ${fmt(cold.steps.roles)}`);
console.log(`ratio warm/cold p50: ${(pct(warm.times, 50) / pct(cold.times, 50)).toFixed(2)}`);
