// Processes and ports, read from /proc and the socket API (no pgrep parsing needed, but the
// same meaning as `pgrep -f <home>`).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

function cmdline(pid) {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`);
    if (!raw.length) return null;
    return raw.toString('utf8').replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

function isZombie(pid) {
  try {
    return /\nState:\s+Z/.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

// The parent pid (/proc/<pid>/status PPid), or 0.
function parentPid(pid) {
  try {
    return Number(/\nPPid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function allPids() {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((p) => p !== process.pid);
}

// Every live (non-zombie) process whose command line mentions `needle` (pgrep -f needle).
export function procsMatching(needle) {
  const out = [];
  for (const pid of allPids()) {
    const argv = cmdline(pid);
    if (argv && argv.join(' ').includes(needle) && !isZombie(pid)) out.push({ pid, argv });
  }
  return out;
}

// A database's server lives in <home>/instances/<instance id>: the catalog maps database ids
// to instance ids (`pgfleet status`, column INSTANCE). An instance never changes once a
// database has one, so the answers are kept.
const BIN_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..', process.env.PGFLEET_BIN || 'build/pgfleet-san');
const instanceCache = new Map(); // `${home}\0${dbId}` -> instance id
function statusMap(home) {
  let out = '';
  try {
    out = execFileSync(BIN_PATH, ['status', '--home', home], { encoding: 'utf8', timeout: 30000, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } });
  } catch {
    return;
  }
  for (const line of out.split('\n')) {
    const f = line.split(/\s+/);
    if (/^db_/.test(f[0]) && /^in_|^db_/.test(f[5] || '')) instanceCache.set(`${home}\0${f[0]}`, f[5]);
  }
}
// The instance id of database dbId (its own id for a database made before instances had ids,
// or when the catalog has none for it yet).
export function instanceOf(home, dbId) {
  const key = `${home}\0${dbId}`;
  if (!instanceCache.has(key)) statusMap(home);
  return instanceCache.get(key) || dbId;
}
// The database id of an instance directory (the directory name when none maps to it).
function databaseOfInstance(home, inst) {
  for (const pass of [0, 1]) {
    for (const [k, v] of instanceCache) if (v === inst && k.startsWith(`${home}\0`)) return k.slice(home.length + 1);
    if (pass === 0) statusMap(home);
  }
  return inst;
}
// The directory of database dbId's instance.
export function instanceDir(home, dbId) {
  return path.join(home, 'instances', instanceOf(home, dbId));
}

// PostgreSQL postmasters started with -D under <home>/instances/: [{pid, dataDir, dbId}]
// (dbId: the database the instance serves, or the instance id of a spare).
// (Backends rename themselves to "postgres: ..." and carry no -D, so only postmasters match.)
// Started spares (a `spare` file beside their data: no database's yet) only with spares.
export function postmasters(home, { spares = false } = {}) {
  const prefix = path.join(home, 'instances') + '/';
  const out = [];
  for (const pid of allPids()) {
    const argv = cmdline(pid);
    if (!argv || !/(^|\/)postgres$/.test(argv[0]) || isZombie(pid)) continue;
    let dataDir = null;
    for (let i = 1; i < argv.length; i++) {
      if (argv[i] === '-D' && argv[i + 1]) dataDir = argv[i + 1];
      else if (argv[i].startsWith('-D') && argv[i].length > 2) dataDir = argv[i].slice(2);
    }
    if (dataDir && path.resolve(dataDir).startsWith(prefix)) {
      const inst = path.resolve(dataDir).slice(prefix.length).split('/')[0];
      if (!spares && fs.existsSync(path.join(prefix, inst, 'spare'))) continue;
      out.push({ pid, ppid: parentPid(pid), dataDir, instance: inst, dbId: inst.startsWith('in_') ? databaseOfInstance(home, inst) : inst });
    }
  }
  // a child the postmaster has just forked carries its command line until it sets its own
  // title: it is no second postmaster
  const pids = new Set(out.map((p) => p.pid));
  return out.filter((p) => !pids.has(p.ppid));
}

// Pid from <home>/instances/<dbId>/data/postmaster.pid (first line), or null.
export function postmasterPidFile(home, dbId) {
  try {
    const first = fs.readFileSync(path.join(instanceDir(home, dbId), 'data', 'postmaster.pid'), 'utf8').split('\n')[0];
    const pid = Number(first);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return !isZombie(pid);
  } catch {
    return false;
  }
}

// The databases whose instance directories exist (named by database id; an instance no
// database maps to by its own id). Warm spares (a `spare` file beside their data) are not
// counted: they belong to no database yet.
export function instanceDirs(home) {
  try {
    return fs.readdirSync(path.join(home, 'instances'), { withFileTypes: true }).filter((d) => d.isDirectory())
      .filter((d) => !fs.existsSync(path.join(home, 'instances', d.name, 'spare')))
      .map((d) => (d.name.startsWith('in_') ? databaseOfInstance(home, d.name) : d.name));
  } catch {
    return [];
  }
}

// True when nothing listens on host:port (a TCP connect is refused).
export function portClosed(port, host = '127.0.0.1', timeoutMs = 2000) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (v) => { s.destroy(); resolve(v); };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(false));
    s.once('error', (e) => done(e.code === 'ECONNREFUSED'));
  });
}

// True when we can bind host:port ourselves (the port is free again).
export function portBindable(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// A random window of `size` ports within [20000, 40000) whose ports are all bindable now,
// reserved for this process with a lock file (test files start their servers in parallel and
// must never share a window: the instances' ports are only bound later). The lock is removed
// at exit; a lock whose owner is dead is taken over.
const lockDir = path.join(os.tmpdir(), 'pgfleet-e2e-port-locks');
const myLocks = [];
process.on('exit', () => { for (const f of myLocks) { try { fs.unlinkSync(f); } catch { /* gone */ } } });

function tryLock(lo) {
  fs.mkdirSync(lockDir, { recursive: true });
  const f = path.join(lockDir, `${lo}.lock`);
  for (let i = 0; i < 2; i++) {
    try {
      fs.writeFileSync(f, String(process.pid), { flag: 'wx' });
      myLocks.push(f);
      return true;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const owner = Number(fs.readFileSync(f, 'utf8'));
      let ownerAlive = false;
      try { process.kill(owner, 0); ownerAlive = true; } catch { /* dead */ }
      if (ownerAlive) return false;
      try { fs.unlinkSync(f); } catch { /* raced */ }
    }
  }
  return false;
}

// Windows stay below the kernel's ephemeral range (ip_local_port_range, usually from 32768)
// when it starts inside [20000, 40000), so client sockets never sit on an instance's port.
function windowCeiling() {
  try {
    const lo = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (lo > 20000 + 1000 && lo < 40000) return lo;
  } catch { /* not Linux */ }
  return 40000;
}

export async function freePortWindow(size = 100) {
  const ceiling = windowCeiling();
  for (let attempt = 0; attempt < 100; attempt++) {
    const lo = 20000 + Math.floor(Math.random() * Math.floor((ceiling - 20000 - size) / size)) * size;
    const checks = await Promise.all(Array.from({ length: size }, (_, i) => portBindable(lo + i)));
    if (checks.every(Boolean) && tryLock(lo)) return { lo, hi: lo + size - 1 };
  }
  throw new Error('no free port window in 20000-40000');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() until it returns a truthy value (returned) or timeoutMs passes (returns the
// last value; callers assert on it with a message).
export async function until(fn, { timeoutMs = 30000, intervalMs = 200 } = {}) {
  const end = Date.now() + timeoutMs;
  let v;
  for (;;) {
    v = await fn();
    if (v || Date.now() > end) return v;
    await sleep(intervalMs);
  }
}
