// What the sleep tests look at: whether a database's postmaster runs, its asleep mark (the
// file beside its data directory), the wait for both, and the /metrics listener's values.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { postmasters, until, instanceDir } from './procs.mjs';

// ctx: the suite's useServer() context; metricsPort: its --metrics-listen port, if any
export function sleepProbes(ctx, metricsPort) {
  const running = (id) => postmasters(ctx.server.home).some((p) => p.dbId === id);
  const marked = (id) => fs.existsSync(path.join(instanceDir(ctx.server.home, id), 'asleep'));
  const asleep = (id) => !running(id) && marked(id);
  async function waitAsleep(id, what = id) {
    const ok = await until(async () => asleep(id), { timeoutMs: 90000, intervalMs: 100 });
    assert.ok(ok, `${what} did not fall asleep`);
  }
  // the metrics as name{labels} -> number
  async function metrics() {
    const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(r.status, 200);
    const m = new Map();
    for (const line of (await r.text()).split('\n')) {
      const hit = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
      if (hit) m.set(hit[1], Number(hit[2]));
    }
    return m;
  }
  return { running, marked, asleep, waitAsleep, metrics };
}
