// Rate limits per credential (docs/api.md "Rate limits"), on a server of its own with a low
// limit: a burst, then 429 with Retry-After and the envelope, a bucket per credential (service
// token, OAuth sign-in), refill at the sustained rate, and --rate-limit 0 for none.
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { client, call, expectStatus, expectError, raw } from './lib/api.mjs';
import { startServer } from './lib/server.mjs';
import { sleep } from './lib/procs.mjs';
import { createUser, createClient, formLogin } from './lib/oauth.mjs';

const RATE = 4;
const BURST = 8;
const ctx = useServer('rate-limit', { extraArgs: ['--rate-limit', String(RATE), '--rate-burst', String(BURST)] });

const list = (c) => call(c, 'GET', '/v1/projects', {});

// Requests until the first 429 (at most `max`): [allowed, the 429 response, seconds taken].
async function exhaust(c, max = BURST * 4) {
  const t0 = Date.now();
  for (let i = 0; i < max; i++) {
    const r = await list(c);
    if (r.status === 429) return [i, r, (Date.now() - t0) / 1000];
    expectStatus(r, 200, `request ${i + 1}`);
  }
  assert.fail(`no 429 within ${max} requests`);
}

ctx.it(`a burst of ${BURST}, then 429 TooManyRequests with Retry-After and the envelope`, async () => {
  await sleep(BURST / RATE * 1000 + 100); // the bucket is full
  const [allowed, r, secs] = await exhaust(ctx.c);
  // the burst, plus what refilled meanwhile (a loaded machine answers slowly)
  assert.ok(allowed >= BURST && allowed <= BURST + Math.ceil(secs * RATE) + 1, `${allowed} requests allowed in ${secs} s before the 429 (burst ${BURST}, ${RATE}/s)`);
  const e = expectError(r, 429, { field: 'Retry-After' });
  assert.equal(e.code, 'TooManyRequests');
  const ra = Number(r.response.headers.get('retry-after'));
  assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= Math.ceil(1 / RATE) + 1, `Retry-After ${r.response.headers.get('retry-after')}`);
  // raw HTTP sees the same, on any endpoint of the credential (a token may have refilled
  // since: then the next request empties the bucket again)
  let again;
  for (let i = 0; i < 4 && again?.status !== 429; i++) {
    again = await raw(ctx.server, 'GET', '/v1/databases');
    if (again.status !== 429) assert.equal(again.status, 200);
  }
  assert.equal(again.status, 429, 'GET /v1/databases with the same credential');
  assert.ok(Number(again.response.headers.get('retry-after')) >= 1);
  // after Retry-After it is allowed again
  await sleep(ra * 1000 + 50);
  expectStatus(await list(ctx.c), 200, 'after Retry-After');
});

ctx.it('the sustained rate: about --rate-limit requests a second once the burst is spent', async () => {
  await exhaust(ctx.c);
  const t0 = Date.now();
  let ok = 0;
  let made = 0;
  while (Date.now() - t0 < 2000) {
    const r = await list(ctx.c);
    made++;
    if (r.status === 200) ok++;
    else { expectError(r, 429); await sleep(50); }
  }
  const secs = (Date.now() - t0) / 1000;
  // never more than the rate allows; as many as it allows unless the client was slower
  assert.ok(ok <= Math.ceil(RATE * secs) + 2, `${ok} allowed in ${secs.toFixed(1)} s at ${RATE}/s`);
  assert.ok(ok >= Math.min(made, Math.floor(RATE * secs)) - 2, `only ${ok} of ${made} allowed in ${secs.toFixed(1)} s at ${RATE}/s`);
});

ctx.it('each credential has its own bucket: another service token and an OAuth sign-in are not limited by the first', async () => {
  await exhaust(ctx.c);
  const other = client(ctx.server, await ctx.server.token({ name: 'second' }));
  expectStatus(await list(other), 200, 'a second service token of the same workspace');
  const REDIRECT = 'http://127.0.0.1:9/callback';
  const user = await createUser(ctx.server, `rl-${Date.now().toString(36)}@example.com`, 'rate-limit-password-1');
  const clientId = await createClient(ctx.server, 'Rate Tool', REDIRECT);
  const tokens = await formLogin(ctx.server, { clientId, redirectUri: REDIRECT, user });
  const oauth = client(ctx.server, tokens.accessToken);
  const [allowed, r] = await exhaust(oauth);
  assert.ok(allowed >= BURST - 1, `the OAuth sign-in had its own burst (${allowed})`);
  expectError(r, 429, { field: 'Retry-After' });
  expectStatus(await list(other), 200, 'the second token is still not limited');
});

ctx.it('requests without a valid credential are not counted: 401, never 429', async () => {
  for (let i = 0; i < BURST * 2; i++) {
    const r = await raw(ctx.server, 'GET', '/v1/projects', { token: 'pfs_not-a-token' });
    assert.equal(r.status, 401, `request ${i + 1}`);
  }
  expectStatus(await raw(ctx.server, 'GET', '/healthz', { token: null }), 200);
});

ctx.it('--rate-limit 0 turns limits off (a server of its own)', async () => {
  const s = await startServer('rate-limit-off', { extraArgs: ['--rate-limit', '0', '--rate-burst', '1'] });
  try {
    const c = client(s);
    for (let i = 0; i < 40; i++) expectStatus(await list(c), 200, `request ${i + 1} with no limit`);
    await s.stop();
  } finally {
    await s.cleanup();
  }
});

ctx.itShutsDownCleanly();
