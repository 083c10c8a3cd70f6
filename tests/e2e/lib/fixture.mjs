// Per-file fixture: one server (own home, own ports) for the tests of a file, stopped and
// cleaned up in after(); `it` wraps a test so a failure carries the server log tail.
import assert from 'node:assert/strict';
import { before, after, test } from 'node:test';
import { startServer, binaryAvailable, BIN } from './server.mjs';
import { client } from './api.mjs';

// opts: the Server's ({ extraArgs }), and `setup(ctx)`, run once the server is up (a file's
// own before() may run before the server has started: put what needs it here).
export function useServer(name, opts = {}) {
  const { setup, ...serverOpts } = opts;
  const ctx = { server: null, c: null };
  before(async () => {
    assert.ok(binaryAvailable(), `server binary ${BIN} missing (build it with \`make e2e\` or set PGFLEET_BIN)`);
    ctx.server = await startServer(name, serverOpts);
    ctx.c = client(ctx.server);
    if (setup) await setup(ctx);
  });
  after(async () => {
    const left = await ctx.server?.cleanup();
    if (left?.length) {
      console.log(`# ${name}: cleanup killed leftover processes: ${left.map((p) => `${p.pid} ${p.argv.join(' ').slice(0, 160)}`).join('; ')}`);
    }
  });
  ctx.it = (title, fn, opts = {}) => test(title, { timeout: 120000, ...opts }, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      if (ctx.server) {
        try { e.message = `${e.message}\n${ctx.server.logTail(40)}`; } catch { /* read-only message */ }
      }
      throw e;
    }
  });
  // Last test of a file: SIGTERM, exit 0, no sanitizer report, no process of this home left.
  ctx.itShutsDownCleanly = () => ctx.it('SIGTERM: server exits 0, no sanitizer report, no process of its home left', async () => {
    await ctx.server.stop();
    assert.deepEqual(await ctx.server.leftoverProcesses(), [],
      `processes of this home still running after the server exited\n${ctx.server.logTail(20, 'datapath.log')}`);
  });
  return ctx;
}
