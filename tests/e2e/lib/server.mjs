// Test harness for one pgfleet server: its own home (mkdtemp), HTTP port and instance port
// window. The binary comes from $PGFLEET_BIN (default build/pgfleet-san under the repo root)
// and runs under ASan/UBSan; stop() asserts a clean exit and a log free of sanitizer reports.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import https from 'node:https';
import { spawn, execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, freePortWindow, postmasters, procsMatching, alive, sleep } from './procs.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');
export const BIN = path.resolve(repoRoot, process.env.PGFLEET_BIN || 'build/pgfleet-san');

export const SANITIZER_ENV = {
  ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1',
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
  LSAN_OPTIONS: 'report_objects=1',
};
const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)|runtime error: /;

function childEnv(extra = {}) {
  return { ...process.env, ...SANITIZER_ENV, ...extra };
}

export function binaryAvailable() {
  try {
    fs.accessSync(BIN, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// Runs a pgfleet CLI subcommand; asserts exit 0 and no sanitizer report; returns the last
// non-empty line of stdout (all of stdout with `full`).
export function cli(args, { timeoutMs = 60000, full = false } = {}) {
  return new Promise((resolve, reject) => {
    execFile(BIN, args, { env: childEnv(), timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const where = `${path.basename(BIN)} ${args.join(' ')}`;
      if (err) return reject(new Error(`${where} failed (${err.code ?? err.signal}): ${stderr || stdout}`));
      if (SANITIZER_RE.test(stderr)) return reject(new Error(`${where}: sanitizer report:\n${stderr}`));
      if (full) return resolve(stdout);
      const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
      if (!lines.length) return reject(new Error(`${where}: empty stdout (stderr: ${stderr})`));
      resolve(lines[lines.length - 1]);
    });
  });
}

export class Server {
  // extraArgs: more `serve` flags for this file's server (e.g. a short backup interval);
  // tls: the API serves HTTPS (--http-tls on); baseUrl is https:// and start() probes it
  // without verifying (the CA is the home's, read it from GET /v1/ca.pem or tls/ca.crt);
  // homeIn: the directory the home is made in (default the system's temporary directory)
  constructor(name, { extraArgs = [], tls = false, homeIn } = {}) {
    this.name = name;
    this.extraArgs = extraArgs;
    this.tls = tls;
    this.homeIn = homeIn;
    this.proc = null;
    this.exit = null;
    this.starts = 0;
  }

  get logFile() {
    return path.join(this.home, 'e2e-server.log');
  }

  async init() {
    // The home is made traversable (0711): as root, pgfleet runs PostgreSQL as the
    // unprivileged `postgres` user, which must reach <home>/instances.
    this.home = fs.mkdtempSync(path.join(this.homeIn ?? os.tmpdir(), `pgfleet-e2e-${this.name}-`));
    fs.chmodSync(this.home, 0o711);
    this.httpPort = await freePort();
    this.poolerPort = await freePort(); // the pooled endpoint (PgBouncer)
    const w = await freePortWindow(100);
    this.portLo = w.lo;
    this.portHi = w.hi;
    this.baseUrl = `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.httpPort}`;
    return this;
  }

  args() {
    return ['serve', '--home', this.home, '--listen', `127.0.0.1:${this.httpPort}`,
      '--port-range', `${this.portLo}-${this.portHi}`, '--public-host', '127.0.0.1',
      '--pooler-listen', `127.0.0.1:${this.poolerPort}`, ...(this.tls ? ['--http-tls', 'on'] : []),
      ...this.extraArgs];
  }

  async start({ timeoutMs = 60000 } = {}) {
    assert.ok(!this.proc, 'server already running');
    fs.appendFileSync(this.logFile, `\n===== e2e: start #${++this.starts} ${new Date().toISOString()}: ${BIN} ${this.args().join(' ')}\n`);
    const fd = fs.openSync(this.logFile, 'a');
    const child = spawn(BIN, this.args(), { env: childEnv(), stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.proc = child;
    this.exit = null;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      child.once('error', (err) => {
        this.exit = { code: null, signal: null, error: err };
        resolve(this.exit);
      });
    });
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (this.exit) {
        this.proc = null;
        throw new Error(`server exited during start (${JSON.stringify(this.exit)})\n${this.logTail()}`);
      }
      try {
        if ((await this.probe()) === 200) return this;
      } catch { /* not listening yet */ }
      if (Date.now() > end) {
        // a server that never answered is stopped before the error: nothing outlives the test
        const tail = this.logTail();
        await this.stop({ check: false });
        throw new Error(`GET /healthz not 200 within ${timeoutMs} ms\n${tail}`);
      }
      await sleep(100);
    }
  }

  // GET /healthz: the status (over HTTPS without verifying the certificate)
  async probe() {
    if (!this.tls) {
      const r = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(2000) });
      await r.arrayBuffer();
      return r.status;
    }
    return new Promise((resolve, reject) => {
      const req = https.get(`${this.baseUrl}/healthz`, { rejectUnauthorized: false, timeout: 2000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
    });
  }

  get pid() {
    return this.proc?.pid;
  }

  // SIGTERM; waits; SIGKILL after 20 s. Asserts exit status 0 and no sanitizer report unless
  // { check: false }. Returns the exit {code, signal}.
  async stop({ check = true, graceMs = 20000 } = {}) {
    if (!this.proc) return this.exit;
    const child = this.proc;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const ex = await this.exited;
    clearTimeout(t);
    this.proc = null;
    if (check) this.assertClean(ex, 'SIGTERM');
    return ex;
  }

  async kill9() {
    if (!this.proc) return this.exit;
    this.proc.kill('SIGKILL');
    const ex = await this.exited;
    this.proc = null;
    return ex;
  }

  async restart(opts) {
    await this.stop(opts);
    return this.start();
  }

  // The first sanitizer report in the server's log (or the home's file `name`) with its
  // surroundings, or null.
  sanitizerReport(name) {
    const log = this.log(name);
    const m = SANITIZER_RE.exec(log);
    return m ? log.slice(Math.max(0, m.index - 2000), m.index + 6000) : null;
  }

  // The processes of this home still running after up to 2 s.
  async leftoverProcesses() {
    let left = this.processes();
    for (let i = 0; i < 20 && left.length; i++) { await sleep(100); left = this.processes(); }
    return left.map((p) => `${p.pid} ${p.argv.join(' ')}`);
  }

  assertClean(ex, how) {
    const report = this.sanitizerReport();
    assert.ok(!report, `sanitizer report in the server log:\n${report}`);
    // the data path is a process of its own, with its own log
    const dreport = this.sanitizerReport('datapath.log');
    assert.ok(!dreport, `sanitizer report in datapath.log:\n${dreport}`);
    assert.ok(ex && ex.code === 0 && !ex.signal, `server did not exit 0 after ${how}: ${JSON.stringify(ex)}\n${this.logTail()}`);
  }

  log(name) {
    try {
      return fs.readFileSync(name ? path.join(this.home, name) : this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  logTail(lines = 60, name) {
    const l = this.log(name).split('\n');
    return `--- ${name ? path.join(this.home, name) : this.logFile} (last ${lines} lines) ---\n${l.slice(-lines).join('\n')}`;
  }

  postmasters() {
    return postmasters(this.home);
  }

  // Every process other than ourselves whose command line names this home (the server,
  // postgres, pgbouncer, ...): `pgrep -f <home>`.
  processes() {
    return procsMatching(this.home);
  }

  // Service token for the default workspace, or for `workspace`.
  async token({ workspace, name } = {}) {
    const args = ['token', 'create', '--home', this.home];
    if (workspace) args.push('--workspace', workspace);
    if (name) args.push('--name', name);
    return cli(args);
  }

  async createWorkspace(name) {
    return cli(['workspace', 'create', '--home', this.home, '--name', name]);
  }

  // after() hook: make sure nothing we started survives the file, whatever happened.
  async cleanup() {
    if (this.proc) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc?.kill('SIGKILL'), 20000);
      await this.exited;
      clearTimeout(t);
      this.proc = null;
    }
    if (!this.home) return;
    const left = this.processes();
    for (const p of left) {
      try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    for (let i = 0; i < 50 && this.processes().some((p) => alive(p.pid)); i++) await sleep(100);
    if (process.env.E2E_KEEP_HOME) {
      console.log(`# kept ${this.home}`);
    } else {
      try { fs.rmSync(this.home, { recursive: true, force: true, maxRetries: 3 }); } catch { /* best effort */ }
    }
    return left;
  }
}

// Starts a server for a test file and a token for its default workspace.
export async function startServer(name, opts = {}) {
  const s = await new Server(name, opts).init();
  await s.start();
  s.adminToken = await s.token({ name: `e2e-${name}` });
  return s;
}
