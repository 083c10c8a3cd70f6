// Database ports and the kernel's ephemeral range: a --port-range that overlaps
// /proc/sys/net/ipv4/ip_local_port_range is refused at start with both ranges named; a
// create that is refused after its port was taken gives the port back at once.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { BIN, SANITIZER_ENV, binaryAvailable } from './lib/server.mjs';
import { freePort } from './lib/procs.mjs';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, waitReady, uniq } from './lib/api.mjs';

const ctx = useServer('ports', { extraArgs: ['--spares', '0'] });

function bindable(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

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

ctx.it('a create refused after its port was taken (a duplicate logicalId) releases the port; the next create gets one', async () => {
  const { data: p } = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('ports'), createDatabase: false } }), 201);
  const { data: br } = expectStatus(await call(ctx.c, 'GET', '/v1/projects/{projectId}/branches', { params: { path: { projectId: p.id } } }), 200);
  const branchId = br[0].id;
  const a = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: p.id, logicalId: 'dup', branchId } }), 201).data;
  const held = new Set([a.connections[0].endpoints.direct.port]);
  for (let i = 0; i < 3; i++) {
    const refused = await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: p.id, logicalId: 'dup', branchId } });
    assert.equal(refused.response.status, 409, `a duplicate logicalId is refused: ${JSON.stringify(refused.error ?? refused.data)}`);
  }
  // every port of the range but the database's is free again (no socket of pgfleet on it)
  const taken = [];
  for (let port = ctx.server.portLo; port <= ctx.server.portHi; port++) {
    if (!held.has(port) && !(await bindable(port))) taken.push(port);
  }
  assert.deepEqual(taken, [], 'ports still held after refused creates');
  const b = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: p.id, name: 'after' } }), 201).data;
  await waitReady(ctx.c, b.id);
  assert.ok(!held.has(b.connections[0].endpoints.direct.port));
}, { timeout: 120000 });
