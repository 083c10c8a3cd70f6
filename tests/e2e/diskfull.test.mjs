// A full disk: the server's home on a small ext4 file system this file makes (a file, mkfs,
// mount -o loop; needs root), filled until creates fail. The error is clear (its code names
// the cause, its hint the home), nothing is half-created (no database row without its op,
// no instance directory without its row), the log does not fill with ENOSPC retries, and
// everything proceeds once space is freed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, after } from 'node:test';
import { execFileSync } from 'node:child_process';
import { useServer } from './lib/fixture.mjs';
import { call, expectStatus, waitReady, uniq } from './lib/api.mjs';
import { instanceDirs, sleep } from './lib/procs.mjs';

const ROOT = os.userInfo().uid === 0;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pf-df-')); // short: socket paths under the home
const img = path.join(work, 'fs.img');
const mnt = path.join(work, 'm');
const FS_MB = Number(process.env.E2E_DISKFULL_MB ?? 400);
let mounted = false;

before(() => {
  if (!ROOT) return;
  fs.chmodSync(work, 0o711); // the servers run as postgres: they must reach the home
  fs.mkdirSync(mnt);
  execFileSync('truncate', ['-s', `${FS_MB}M`, img]);
  // -m 0: no blocks reserved for root (pgfleet runs as root, its servers as postgres)
  execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', img]);
  execFileSync('mount', ['-o', 'loop', img, mnt]);
  mounted = true;
  fs.chmodSync(mnt, 0o711);
});

const ctx = useServer('df', { homeIn: ROOT ? mnt : undefined, extraArgs: ['--spares', '2', '--backup-interval', '0'] });

after(async () => {
  await ctx.server?.cleanup(); // the server and its processes first: then the mount is idle
  if (mounted) {
    try {
      execFileSync('umount', [mnt]);
    } catch {
      execFileSync('umount', ['-l', mnt]);
    }
  }
  fs.rmSync(work, { recursive: true, force: true });
});

const S = { acked: [], project: null };
const filler = () => path.join(mnt, 'filler');

// Writes filler files until the file system refuses more (ENOSPC).
function fill() {
  fs.mkdirSync(filler(), { recursive: true });
  const chunk = Buffer.alloc(4 << 20, 0x5a);
  for (let i = 0; ; i++) {
    const f = path.join(filler(), `f${Date.now()}-${i}`);
    let fd;
    try {
      fd = fs.openSync(f, 'w');
      for (;;) fs.writeSync(fd, chunk);
    } catch (e) {
      if (fd !== undefined) fs.closeSync(fd);
      if (e.code !== 'ENOSPC') throw e;
      // one more small file: the last blocks too
      try { fs.writeFileSync(path.join(filler(), `tail${i}`), Buffer.alloc(4096)); } catch { return; }
    }
  }
}

function catalog(query) {
  const out = execFileSync('sqlite3', ['-readonly', '-separator', '|', path.join(ctx.server.home, 'catalog.db'), query], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).map((l) => l.split('|'));
}

// No database row without its op (a database not ready has a live provision or delete op,
// or ended in failure with a reason), no instance directory without its row.
function assertWhole(what) {
  const rows = catalog("SELECT d.id, d.status, (SELECT COUNT(*) FROM ops o WHERE o.database_id = d.id AND o.state IN ('pending','running')) FROM databases d");
  const ids = new Set(rows.map((r) => r[0]));
  const orphanRows = rows.filter(([, status, ops]) => (status === 'provisioning' || status === 'deleting') && Number(ops) === 0);
  assert.deepEqual(orphanRows, [], `${what}: database rows in flight without an op`);
  const orphanDirs = instanceDirs(ctx.server.home).filter((d) => !ids.has(d));
  assert.deepEqual(orphanDirs, [], `${what}: instance directories without a database row`);
}

ctx.it('setup: a project and a ready database while there is room', async (t) => {
  if (!ROOT) return t.skip('needs root (mount -o loop)');
  S.project = expectStatus(await call(ctx.c, 'POST', '/v1/projects', { body: { name: uniq('full'), createDatabase: false } }), 201).data;
  const d = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name: 'before' } }), 201).data;
  await waitReady(ctx.c, d.id, { timeoutMs: 90000 });
  S.acked.push(d.id);
}, { timeout: 180000 });

ctx.it('full disk: creates fail with a clear error (code DiskFull, hint naming the home), nothing half-created', async (t) => {
  if (!ROOT) return t.skip('needs root');
  let refused = null;
  for (let i = 0; i < 6 && !refused; i++) {
    fill();
    const r = await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name: `full-${i}` } });
    if (r.status === 201) {
      S.acked.push(r.body.data.id); // acknowledged: it must end ready once space is freed
      continue;
    }
    refused = r;
  }
  assert.ok(refused, `a create was refused on a full disk (acknowledged instead: ${S.acked.join(', ')})`);
  assert.ok(refused.status >= 500 && refused.status !== 500, `not a bare 500: ${refused.status} ${JSON.stringify(refused.body)}`);
  assert.equal(refused.body.error.code, 'DiskFull', JSON.stringify(refused.body));
  assert.ok(refused.body.error.hint.includes(ctx.server.home), `the hint names the home ${ctx.server.home}: ${JSON.stringify(refused.body)}`);
  assert.match(refused.body.error.message, /disk|space/i);
  assert.doesNotMatch(JSON.stringify(refused.body), /COMMIT|sqlite|InternalError/i, `no store internals in the answer: ${JSON.stringify(refused.body)}`);
  // and a second kind of create: a connection on the ready database
  const c = await call(ctx.c, 'POST', '/v1/connections', { body: { databaseId: S.acked[0], name: uniq('full') } });
  assert.ok(c.status === 201 || c.body?.error?.code === 'DiskFull', `connection create: 201 or DiskFull, got ${c.status} ${JSON.stringify(c.body)}`);
  if (c.status === 201) S.conn = c.body.data;
  assertWhole('while full');
}, { timeout: 180000 });

ctx.it('while full, background threads back off: no ENOSPC log loop', async (t) => {
  if (!ROOT) return t.skip('needs root');
  const count = () => ctx.server.log().split('\n').filter((l) => /No space left|disk is full|DiskFull|disk full/i.test(l)).length;
  fill();
  const n0 = count();
  await sleep(15000);
  const n = count() - n0;
  assert.ok(n <= 30, `${n} disk-full log lines in 15 s: a retry loop`);
});

ctx.it('space freed: everything proceeds (acknowledged databases ready, creates work again)', async (t) => {
  if (!ROOT) return t.skip('needs root');
  fs.rmSync(filler(), { recursive: true, force: true });
  const d = expectStatus(await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: S.project.id, name: 'after' } }), 201).data;
  S.acked.push(d.id);
  for (const id of S.acked) await waitReady(ctx.c, id, { timeoutMs: 120000 });
  const c = expectStatus(await call(ctx.c, 'POST', '/v1/connections', { body: { databaseId: d.id, name: uniq('after') } }), 201);
  assert.ok(c.data.id);
  assertWhole('after freeing space');
}, { timeout: 300000 });

ctx.itShutsDownCleanly();
