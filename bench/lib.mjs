// Helpers every bench script shares: one way to run a server (its own home, free loopback
// ports, a service token, the wait for /healthz, the stop), a free port, a sleep, a
// percentile.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, closeSync, readFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const root = resolve(import.meta.dirname, '..');
export const bin = process.env.PGFLEET_BIN ?? join(root, 'build/pgfleet');

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// the p-th percentile of xs (nearest rank); NaN for no samples
export const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN; };

let help;
// whether this binary's `serve` takes flag (an older binary lacks the newer ones)
export function takes(flag) {
  help ??= execFileSync(bin, ['serve', '--help'], { encoding: 'utf8' });
  return help.includes(flag);
}

// A pgfleet server of a bench, made (home, ports, token) but not started:
//   name     the home's prefix (pgfleet-bench-<name>-)
//   ports    how many database ports, from a random spot of 20000-31999 (below the
//            ephemeral range, which pgfleet refuses); or range: [lo, hi]
//   pooler   a PgBouncer listener (default true); metrics: a /metrics listener
//   unlimited  no per-credential rate limit (wrk and many clients share one token)
//   flags    any other serve flags
export async function benchServer({ name, ports = 20, range, pooler = true, metrics = false, unlimited = false, flags = [] }) {
  const s = new BenchServer();
  s.home = mkdtempSync(join(tmpdir(), `pgfleet-bench-${name}-`));
  chmodSync(s.home, 0o711); // the servers' user walks through it
  s.logPath = join(s.home, 'server.log');
  s.port = await freePort();
  s.base = `http://127.0.0.1:${s.port}`;
  const [lo, hi] = range ?? (() => { const l = 20000 + Math.floor(Math.random() * Math.max(1, Math.floor((12000 - ports) / ports))) * ports; return [l, l + ports - 1]; })();
  s.args = ['serve', '--home', s.home, '--listen', `127.0.0.1:${s.port}`, '--port-range', `${lo}-${hi}`];
  if (pooler) {
    s.poolerPort = await freePort();
    s.args.push('--pooler-listen', `127.0.0.1:${s.poolerPort}`);
  }
  if (metrics) {
    s.metricsPort = await freePort();
    s.args.push('--metrics-listen', `127.0.0.1:${s.metricsPort}`);
  }
  if (unlimited && takes('--rate-limit')) s.args.push('--rate-limit', '0');
  s.args.push(...flags);
  s.token = execFileSync(bin, ['token', 'create', '--home', s.home], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop();
  s.H = { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/json' };
  return s;
}

class BenchServer {
  proc = null;

  get pid() { return this.proc?.pid; }

  // Starts it and waits for GET /healthz 200; a server that exits or never answers is
  // stopped and the error carries the log's tail.
  async start({ timeoutMs = 60000 } = {}) {
    const fd = openSync(this.logPath, 'a');
    const proc = spawn(bin, this.args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.proc = proc;
    let exited = null;
    this.exited = new Promise((r) => proc.once('exit', (code, signal) => { exited = { code, signal }; r(exited); }));
    const end = Date.now() + timeoutMs;
    while (!exited) {
      try {
        const r = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        if (r.ok) return this;
      } catch { /* not listening yet */ }
      if (Date.now() > end) {
        await this.stop();
        throw new Error(`GET /healthz not 200 within ${timeoutMs} ms\n${this.logTail()}`);
      }
      await sleep(50);
    }
    this.proc = null;
    throw new Error(`server exited during start (${JSON.stringify(exited)})\n${this.logTail()}`);
  }

  // SIGTERM, SIGKILL after graceMs; resolves once it has exited
  async stop(graceMs = 20000) {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }

  async kill9() {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    p.kill('SIGKILL');
    await this.exited;
  }

  // stops it (when running) and removes its home
  async close() {
    await this.stop();
    rmSync(this.home, { recursive: true, force: true });
  }

  logTail(chars = 3000) {
    try { return readFileSync(this.logPath, 'utf8').slice(-chars); } catch { return ''; }
  }

  // {status, body}, whatever the status
  async request(method, path, body, timeoutMs = 60000) {
    const r = await fetch(this.base + path, { method, headers: this.H, body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(timeoutMs) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }

  // the body of a 2xx answer; throws on any other
  async api(method, path, body) {
    const r = await this.request(method, path, body);
    if (r.status >= 400) throw new Error(`${method} ${path} -> ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  // waits until the database is ready (throws when it fails)
  async waitReady(id, pollMs = 20) {
    for (;;) {
      const { data } = await this.api('GET', `/v1/databases/${id}`);
      if (data.status === 'ready') return data;
      if (data.status === 'failure') throw new Error(`database ${id} failed: ${JSON.stringify(data)}`);
      await sleep(pollMs);
    }
  }

  // the /metrics lines (name and labels -> value); a kept-alive socket the server closed
  // meanwhile fails one fetch (EPIPE): asked again
  async metrics() {
    let text;
    for (let i = 0; ; i++) {
      try {
        text = await (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text();
        break;
      } catch (e) {
        if (i >= 4) throw e;
        await sleep(200);
      }
    }
    return new Map(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => { const i = l.lastIndexOf(' '); return [l.slice(0, i), Number(l.slice(i + 1))]; }));
  }
}
