// Database ports and the kernel's ephemeral range: a --port-range that overlaps
// /proc/sys/net/ipv4/ip_local_port_range is refused at start with both ranges named.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execFile } from 'node:child_process';
import { BIN, SANITIZER_ENV, binaryAvailable } from './lib/server.mjs';
import { freePort } from './lib/procs.mjs';

function ephemeral() {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return { lo, hi };
  } catch {
    return null;
  }
}

function serve(args) {
  return new Promise((resolve) => {
    execFile(BIN, ['serve', ...args], { env: { ...process.env, ...SANITIZER_ENV }, timeout: 30000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, signal: err?.signal, out: stdout + stderr }));
  });
}

test('a --port-range overlapping the ephemeral range is refused at start, naming both ranges', { timeout: 60000 }, async (t) => {
  assert.ok(binaryAvailable(), `server binary ${BIN} missing`);
  const eph = ephemeral();
  if (!eph) return t.skip('no /proc/sys/net/ipv4/ip_local_port_range');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pgfleet-e2e-ports-'));
  try {
    const http = await freePort();
    // a range straddling the ephemeral range's start, and one inside it
    const cases = [[eph.lo - 10, eph.lo + 10], [eph.lo + 100, eph.lo + 199]];
    for (const [lo, hi] of cases) {
      const r = await serve(['--home', home, '--listen', `127.0.0.1:${http}`, '--port-range', `${lo}-${hi}`]);
      assert.equal(r.code, 1, `--port-range ${lo}-${hi}: exit status 1 (${r.out})`);
      assert.ok(r.out.includes(`${lo}-${hi}`), `the message names the range given: ${r.out}`);
      assert.ok(r.out.includes(`${eph.lo}-${eph.hi}`), `the message names the ephemeral range: ${r.out}`);
      assert.match(r.out, /ephemeral/);
      assert.doesNotMatch(r.out, /AddressSanitizer|runtime error:/);
    }
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test('the default --port-range is 20000-29999, below the usual ephemeral range', { timeout: 30000 }, async () => {
  const r = await new Promise((resolve) => execFile(BIN, ['serve', '--help'], { env: { ...process.env, ...SANITIZER_ENV } },
    (err, stdout, stderr) => resolve(stdout + stderr)));
  assert.match(r, /port-range[^\n]*20000-29999/, r);
});
