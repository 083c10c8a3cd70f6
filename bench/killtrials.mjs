// Crash durability (issue figure, not pass/fail): randomized `kill -9` trials over every op
// kind (create, delete, connection create / rotate / delete, backup, restore, clone). Each
// trial sends one request, kills the server at a random moment (0-1.5 s later, so before,
// during or after the answer), starts it again on the same home and checks that what was
// acknowledged (a 2xx received before the kill) holds: a created or cloned database ends
// ready and logs in, a deleted one answers 404, a created or rotated credential logs in with
// the acknowledged password, a deleted one no longer does, a backup ends completed, a
// restored database ends ready without the table made after its backup. What an op that
// was not acknowledged may have changed (a rotated password) is forgotten. Prints trials, acknowledged ops by kind and how many were
// lost (aim: 0).
//   BENCH_KILL_TRIALS (default 100), PGFLEET_BIN (default build/pgfleet)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { benchServer, sleep } from './lib.mjs';

const TRIALS = Number(process.env.BENCH_KILL_TRIALS ?? 100);
const KINDS = ['create', 'delete', 'conn_create', 'rotate', 'conn_delete', 'backup', 'restore', 'clone'];

const pick = (a) => a[Math.floor(Math.random() * a.length)];

const server = await benchServer({ name: 'killtrials', ports: 60, flags: ['--backup-interval', '0', '--spares', '2'] });
const start = () => server.start();
const kill9 = () => server.kill9();
const api = (method, path, body) => server.request(method, path, body);
async function until(fn, ms = 90000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => false);
    if (v || Date.now() > end) return v;
    await sleep(250);
  }
}
// what psql prints for sql as cs, or null when it cannot log in (or the statement fails)
function psql(cs, sql) {
  try {
    return execFileSync('psql', [cs, '-tAc', sql], { encoding: 'utf8', env: { ...process.env, PGCONNECT_TIMEOUT: '5' }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 15000 }).trim();
  } catch {
    return null;
  }
}
const logsIn = (cs) => psql(cs, 'SELECT 1') === '1';
const status = async (id) => (await api('GET', `/v1/databases/${id}`));
const isReady = async (id) => (await status(id)).body?.data?.status === 'ready';
const directCs = (c) => c.endpoints.direct.connectionString;

// the fleet we act on: databases known ready, each with the credentials whose password is
// known (id -> cs); the first one is never deleted
const fleet = new Map();
let project;

async function newDb(extra = {}) {
  const r = await api('POST', '/v1/databases', { projectId: project.id, name: `kt-${Date.now().toString(36)}`, ...extra });
  if (r.status !== 201) throw new Error(`create: ${r.status} ${JSON.stringify(r.body)}`);
  await until(() => isReady(r.body.data.id));
  return r.body.data;
}
async function completedBackup(id) {
  const l = await api('GET', `/v1/databases/${id}/backups`);
  return l.body?.data?.find((b) => b.status === 'completed');
}

// One trial: the request; once acknowledged, the check of what it promised (true, or what
// failed); when not, what it may have changed that the fleet no longer knows (uncertain).
async function request(kind) {
  const ready = [...fleet.keys()];
  const id = pick(ready);
  const f = fleet.get(id);
  switch (kind) {
    case 'create':
    case 'clone': {
      const body = { projectId: project.id, name: `kt-${kind}-${Date.now().toString(36)}` };
      if (kind === 'clone') body.source = { type: 'database', databaseId: id };
      return { kind, send: () => api('POST', '/v1/databases', body), ok: (r) => r.status === 201,
        check: async (r) => {
          const d = r.body.data;
          const ready_ = await until(() => isReady(d.id), 120000);
          const good = ready_ && logsIn(directCs(d.connections[0]));
          if (good) fleet.set(d.id, new Map([[d.connections[0].id, directCs(d.connections[0])]]));
          return good || (ready_ ? 'its credential does not log in' : 'not ready');
        } };
    }
    case 'delete':
      return { kind, send: () => api('DELETE', `/v1/databases/${id}`), ok: (r) => r.status === 204,
        before: () => fleet.delete(id),
        check: async () => (await until(async () => (await status(id)).status === 404, 60000)) || 'still there' };
    case 'conn_create':
      return { kind, send: () => api('POST', '/v1/connections', { databaseId: id, name: `kt-${Date.now().toString(36)}` }), ok: (r) => r.status === 201,
        check: async (r) => {
          const c = r.body.data;
          const good = await until(async () => logsIn(directCs(c)), 60000);
          if (good) f.set(c.id, directCs(c));
          return good || 'does not log in';
        } };
    case 'rotate': {
      const [cid] = pick([...f]);
      return { kind, send: () => api('POST', `/v1/connections/${cid}/rotate`), ok: (r) => r.status === 200,
        check: async (r) => {
          const good = await until(async () => logsIn(directCs(r.body.data)), 60000);
          f.set(cid, directCs(r.body.data));
          return good || 'the new password does not log in';
        },
        // the rotate may have happened: the password this bench knows may be the old one
        uncertain: () => f.delete(cid) };
    }
    case 'conn_delete': {
      if (f.size < 2) return request('conn_create');
      const [cid, cs] = pick([...f].slice(1));
      return { kind, send: () => api('DELETE', `/v1/connections/${cid}`), ok: (r) => r.status === 204,
        before: () => f.delete(cid),
        check: async () => (await until(async () => (await api('GET', `/v1/connections/${cid}`)).status === 404 && !logsIn(cs), 60000)) || 'still there or still logs in',
        uncertain: () => f.delete(cid) };
    }
    case 'backup':
      return { kind, send: () => api('POST', `/v1/databases/${id}/backups`, {}), ok: (r) => r.status === 202,
        check: async (r) => (await until(async () => (await api('GET', `/v1/databases/${id}/backups`)).body?.data?.some((b) => b.id === r.body.data.id && b.status === 'completed'), 120000)) || 'not completed' };
    case 'restore': {
      const b = await completedBackup(id);
      if (!b) return request('backup');
      // a table made after the backup: the restore takes it away
      const cs = f.values().next().value;
      const table = `kt_after_${Date.now().toString(36)}`;
      if (psql(cs, `CREATE TABLE ${table} ()`) === null) {
        console.log(`killtrials: cannot create ${table} on ${id}: a backup trial instead`);
        return request('backup');
      }
      return { kind, send: () => api('POST', `/v1/databases/${id}/restore`, { source: { type: 'backup', databaseId: id, backupId: b.id } }), ok: (r) => r.status === 200,
        check: async () => {
          if (!(await until(() => isReady(id), 180000))) return 'not ready';
          const gone = psql(cs, `SELECT to_regclass('${table}') IS NULL`);
          return gone === 't' || (gone === null ? 'its credential does not log in' : `not restored: ${table}, made after the backup, is still there`);
        } };
    }
  }
  throw new Error(kind);
}

const acked = Object.fromEntries(KINDS.map((k) => [k, 0]));
const lost = Object.fromEntries(KINDS.map((k) => [k, 0]));
const lostWhat = [];
let unacked = 0;
try {
  await start();
  const p = await api('POST', '/v1/projects', { name: 'killtrials', createDatabase: false });
  project = p.body.data;
  for (let i = 0; i < 3; i++) {
    const d = await newDb();
    fleet.set(d.id, new Map([[d.connections[0].id, directCs(d.connections[0])]]));
  }
  const t0 = Date.now();
  for (let t = 0; t < TRIALS; t++) {
    // keep 3 to 6 ready databases: deletes when many, creates when few
    let kind = pick(KINDS);
    if (fleet.size <= 2 && kind === 'delete') kind = 'create';
    if (fleet.size >= 6 && (kind === 'create' || kind === 'clone')) kind = 'delete';
    if (fleet.size === 0) kind = 'create';
    const trial = await request(kind);
    const k = trial.kind;
    let answer = null;
    const pending = trial.send().then((r) => { answer = r; }).catch(() => {});
    await sleep(Math.random() * 1500);
    await kill9();
    await pending;
    await start();
    if (answer && trial.ok(answer)) {
      acked[k]++;
      trial.before?.();
      const verdict = await trial.check(answer);
      if (verdict !== true) {
        lost[k]++;
        lostWhat.push(`trial ${t}: ${k}: ${verdict}: ${JSON.stringify(answer.body).slice(0, 200)}`);
        // what the server said about it (the home is removed at the end)
        const id = answer.body?.data?.database?.id ?? answer.body?.data?.id ?? '';
        const lines = readFileSync(server.logPath, 'utf8').split('\n').filter((l) => id && l.includes(id) && !l.includes('level=debug'));
        lostWhat.push(...lines.slice(-12).map((l) => `    ${l.slice(0, 300)}`));
      }
    } else {
      unacked++;
      trial.uncertain?.();
      // not acknowledged: whatever it did, the fleet must still be usable; re-read it
      for (const [id, creds] of fleet) if (creds.size === 0) fleet.delete(id);
      for (const id of [...fleet.keys()]) if ((await status(id)).status === 404) fleet.delete(id);
      for (const id of [...fleet.keys()]) await until(() => isReady(id), 120000);
    }
    if ((t + 1) % 10 === 0) {
      const a = Object.values(acked).reduce((x, y) => x + y, 0);
      const l = Object.values(lost).reduce((x, y) => x + y, 0);
      console.log(`killtrials: ${t + 1}/${TRIALS} trials, ${Math.round((Date.now() - t0) / 1000)} s: acknowledged ${a}, lost ${l}`);
    }
  }
  const total = Object.values(acked).reduce((a, b) => a + b, 0);
  const totalLost = Object.values(lost).reduce((a, b) => a + b, 0);
  console.log(`killtrials: ${TRIALS} kill -9 trials in ${Math.round((Date.now() - t0) / 1000)} s; acknowledged ${total} (${KINDS.map((k) => `${k} ${acked[k]}`).join(', ')}), not acknowledged ${unacked}; lost ${totalLost} (aim: 0)`);
  for (const l of lostWhat) console.log(`killtrials: lost: ${l}`);
} finally {
  await kill9();
  // the servers of the fleet outlive a kill -9: stop them with a clean start and SIGTERM
  try { await start(); } catch { /* best effort */ }
  await server.close();
}
