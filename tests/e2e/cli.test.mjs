// The CLI over the API against a real server: login (the token from stdin, the config file
// 0600, https required off loopback), every command with its table and --json (the API's
// objects, checked against the SDK's schemas), exit codes, --wait with plain lines and with a
// redrawn progress line under a pseudo-terminal, psql through a short-lived connection (its
// password only in psql's environment; gone afterwards, also when pgfleet is killed), help on
// every command and the completion scripts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { useServer } from './lib/fixture.mjs';
import { BIN } from './lib/server.mjs';
import { call, expectStatus } from './lib/api.mjs';
import { expectShape } from './lib/schemas.mjs';
import { pgfleet, expectExit, parseTable } from './lib/cli.mjs';
import { sleep } from './lib/procs.mjs';

const ctx = useServer('cli');
const it = ctx.it;
const cfg = fs.mkdtempSync(path.join(os.tmpdir(), 'pgfleet-cli-cfg-'));
process.on('exit', () => fs.rmSync(cfg, { recursive: true, force: true }));
const env = { XDG_CONFIG_HOME: cfg };
const run = (args, opts = {}) => pgfleet(args, { ...opts, env: { ...env, ...opts.env } });
const ok = async (args, opts) => expectExit(await run(args, opts), 0);
const json = async (args, opts) => JSON.parse((await ok([...args, '--json'], opts)).stdout);
const st = {};

it('login: the token from stdin is checked and saved in $XDG_CONFIG_HOME/pgfleet/config, mode 0600', async () => {
  const bad = await run(['login', '--url', ctx.server.baseUrl], { input: 'pfs_not_a_token\n' });
  expectExit(bad, 1);
  assert.ok(!fs.existsSync(path.join(cfg, 'pgfleet/config')), 'a refused token is not saved');
  const r = await ok(['login', '--url', ctx.server.baseUrl], { input: `${ctx.server.adminToken}\n` });
  assert.match(r.stderr, /logged in to/);
  const file = path.join(cfg, 'pgfleet/config');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
  assert.match(fs.readFileSync(file, 'utf8'), new RegExp(`url = ${ctx.server.baseUrl}`));
  // never from argv: there is no option for it
  expectExit(await run(['login', '--url', ctx.server.baseUrl, '--token', 'x']), 2);
});

it('login refuses an http URL off loopback (https required) before reading a token', async () => {
  const r = await run(['login', '--url', 'http://db.example.com:8080'], { input: `${ctx.server.adminToken}\n` });
  expectExit(r, 2);
  assert.match(r.stderr, /https/);
  const e = await run(['projects', 'list'], { env: { XDG_CONFIG_HOME: path.join(cfg, 'none'), PGFLEET_URL: 'http://10.1.2.3:8080', PGFLEET_TOKEN: 'x' } });
  expectExit(e, 2);
});

it('PGFLEET_URL and PGFLEET_TOKEN work without a config; an unreachable server is exit 5', async () => {
  const other = { XDG_CONFIG_HOME: path.join(cfg, 'none'), PGFLEET_URL: ctx.server.baseUrl, PGFLEET_TOKEN: ctx.server.adminToken };
  expectExit(await run(['projects', 'list'], { env: other }), 0);
  const down = await run(['projects', 'list'], { env: { ...other, PGFLEET_URL: 'http://127.0.0.1:1' } });
  expectExit(down, 5);
  expectExit(await run(['projects', 'list'], { env: { XDG_CONFIG_HOME: path.join(cfg, 'none') } }), 1);
});

it('projects create --ttl --wait (plain progress lines off a terminal), list, get: tables and --json', async () => {
  const r = await ok(['projects', 'create', '--name', 'cli-one', '--ttl', '1h', '--wait', '--json']);
  const p = JSON.parse(r.stdout);
  expectShape('postV1Projects', 201, { data: p });
  assert.equal(p.database.status, 'ready');
  const ahead = Date.parse(p.expiresAt) - Date.now();
  assert.ok(ahead > 3500e3 && ahead <= 3600e3, `expiresAt ${p.expiresAt} about 1 h ahead`);
  assert.match(r.stderr, new RegExp(`^${p.database.id}: provisioning \\(`, 'm'));
  assert.match(r.stderr, new RegExp(`^${p.database.id}: ready \\(`, 'm'));
  assert.ok(!r.stderr.includes('\r'), 'no carriage return off a terminal');
  st.project = p.id;
  st.db = p.database.id;
  const rows = parseTable((await ok(['projects', 'list'])).stdout);
  const row = rows.find((x) => x.ID === p.id);
  assert.ok(row, 'listed');
  assert.equal(row.NAME, 'cli-one');
  assert.equal(row.EXPIRES, p.expiresAt);
  const got = await json(['projects', 'get', p.id]);
  expectShape('getV1ProjectsById', 200, { data: got });
  assert.equal(got.expiresAt, p.expiresAt);
  const all = await json(['projects', 'list']);
  assert.ok(all.some((x) => x.id === p.id));
  expectShape('getV1Projects', 200, { data: all, pagination: { nextCursor: null, hasMore: false } });
});

it('databases create --wait under a pseudo-terminal draws one progress line with \\r', async () => {
  const r = await ok(['databases', 'create', '--project', st.project, '--name', 'cli-two', '--wait'], { tty: true });
  const out = r.stdout; // script merges the terminal's output
  assert.match(out, /\r\x1b\[K(db_\w+): (provisioning|ready) \(\d+\.\d s\)/);
  assert.match(out, /: ready \(\d+\.\d s\)\r?\n/);
  const rows = parseTable(out.slice(out.indexOf('ID ')).replaceAll('\r', ''));
  assert.equal(rows[0].STATUS, 'ready');
  assert.equal(rows[0].NAME, 'cli-two');
  assert.match(out, /direct: postgresql:\/\//);
  st.db2 = rows[0].ID;
  const list = parseTable((await ok(['databases', 'list', '--project', st.project])).stdout);
  assert.deepEqual(list.map((x) => x.ID).sort(), [st.db, st.db2].sort());
  const d = await json(['databases', 'get', st.db2]);
  expectShape('getV1DatabasesByDatabaseId', 200, { data: d });
});

it('exit codes: 2 usage, 3 not found, 4 conflict, 1 refused', async () => {
  expectExit(await run(['projects', 'frobnicate']), 2);
  expectExit(await run(['projects', 'get']), 2);
  expectExit(await run(['databases', 'list', '--bogus']), 2);
  expectExit(await run(['projects', 'create', '--ttl', 'soon']), 2);
  const nf = expectExit(await run(['databases', 'get', 'db_doesnotexist']), 3);
  assert.match(nf.stderr, /was not found \(hint: databaseId\)/);
  expectExit(await run(['projects', 'delete', 'proj_doesnotexist']), 3);
  // a branch with a live database cannot be deleted: 409
  const br = await json(['branches', 'create', '--project', st.project, '--git-name', 'feature-cli']);
  expectShape('postV1ProjectsByProjectIdBranches', 201, { data: br });
  const mk = await call(ctx.c, 'POST', '/v1/databases', { body: { projectId: st.project, branchId: br.id, name: 'on-branch' } });
  expectStatus(mk, 201);
  const conflict = expectExit(await run(['branches', 'delete', br.id]), 4);
  assert.match(conflict.stderr, /hint/);
  expectExit(await run(['databases', 'delete', mk.body.data.id]), 0);
  const brs = parseTable((await ok(['branches', 'list', '--project', st.project])).stdout);
  assert.ok(brs.some((x) => x.ID === br.id && x['GIT NAME'] === 'feature-cli'));
  assert.equal((await json(['branches', 'get', br.id])).gitName, 'feature-cli');
  expectExit(await run(['branches', 'delete', br.id]), 0);
  expectExit(await run(['branches', 'get', br.id]), 3);
  // 400 from the server: exit 1 with the message and the hint
  const tooSoon = expectExit(await run(['projects', 'create', '--ttl', '10s', '--no-database']), 1);
  assert.match(tooSoon.stderr, /expiresAt/);
});

it('connections list, create, rotate, delete', async () => {
  const made = await json(['connections', 'create', st.db2, '--name', 'cli-conn']);
  expectShape('postV1DatabasesByDatabaseIdConnections', 200, { data: made });
  const rows = parseTable((await ok(['connections', 'list', st.db2])).stdout);
  assert.ok(rows.some((x) => x.ID === made.id && x.NAME === 'cli-conn' && x.DATABASE === st.db2));
  const rot = await ok(['connections', 'rotate', made.id]);
  assert.match(rot.stdout, /direct: postgresql:\/\/u_\w+:\w+@/);
  assert.match(rot.stdout, /shown only now/);
  expectExit(await run(['connections', 'delete', made.id]), 0);
  expectExit(await run(['connections', 'delete', made.id]), 3);
  assert.ok(!(await json(['connections', 'list', st.db2])).some((x) => x.id === made.id));
});

it('backups create --wait, backups list, restore --wait, usage', async () => {
  const b = await json(['backups', 'create', st.db2, '--wait']);
  assert.equal(b.status, 'completed');
  const rows = parseTable((await ok(['backups', 'list', st.db2])).stdout);
  assert.ok(rows.some((x) => x.ID === b.id && x.STATUS === 'completed' && x.TYPE === 'full'));
  const r = await ok(['restore', st.db2, '--backup', b.id, '--wait']);
  assert.match(r.stderr, new RegExp(`${st.db2}: ready`));
  assert.equal(parseTable(r.stdout)[0].STATUS, 'ready');
  expectExit(await run(['restore', st.db2]), 2);
  const u = await json(['usage', st.db2]);
  expectShape('getV1DatabasesByDatabaseIdUsage', 200, u);
  const ut = parseTable((await ok(['usage', st.db2, '--start', '2026-01-01'])).stdout);
  assert.equal(ut.length, 1);
  assert.ok('OPERATIONS' in ut[0] && ut[0].START.startsWith('2026-01-01'));
  expectExit(await run(['usage', st.db2, '--start', 'yesterday']), 1);
});

it('psql DB runs psql with a connection of its own, its password only in the environment, deleted afterwards', async () => {
  const before = (await json(['connections', 'list', st.db])).map((x) => x.id).sort();
  // psql's shell escape shows psql's own argv and whether PGPASSWORD is set
  const r = await ok(['psql', st.db, '--', '-At', '-c', 'select 40 + 2',
    '-c', '\\! tr "\\0" " " < /proc/$PPID/cmdline; echo; echo "pw=${#PGPASSWORD}"; case "$(tr "\\0" " " < /proc/$PPID/cmdline)" in *"$PGPASSWORD"*) echo leaked;; *) echo clean;; esac']);
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], '42');
  assert.match(lines[1], /^\S*psql -h 127\.0\.0\.1 -p \d+ -U u_\w+ -d postgres /);
  assert.match(r.stdout, /^pw=40$/m);
  assert.match(r.stdout, /^clean$/m);
  const after = (await json(['connections', 'list', st.db])).map((x) => x.id).sort();
  assert.deepEqual(after, before, 'the short-lived connection is gone');
});

it('psql: a connection left by a killed pgfleet is deleted by the next command', async () => {
  const before = (await json(['connections', 'list', st.db])).map((x) => x.id);
  const child = spawn(BIN, ['psql', st.db, '--', '-c', 'select pg_sleep(60)'], { env: { ...process.env, ...env, PGFLEET_URL: '', PGFLEET_TOKEN: '' }, stdio: 'ignore' });
  let extra = [];
  for (let i = 0; i < 100 && !extra.length; i++) {
    await sleep(100);
    const r = await call(ctx.c, 'GET', '/v1/databases/{databaseId}/connections', { params: { path: { databaseId: st.db } } });
    extra = r.body.data.filter((x) => !before.includes(x.id));
  }
  assert.equal(extra.length, 1, 'psql got its connection');
  assert.match(extra[0].name, /^pgfleet-psql-/);
  // kill -9 pgfleet, then its psql
  // psql starts once the create's answer is in (the list may show the connection before)
  let kids = [];
  for (let i = 0; i < 100 && !kids.length; i++) {
    await sleep(100);
    try {
      kids = execFileSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
    } catch { /* none yet: ps exits 1 */ }
  }
  assert.ok(kids.length, 'psql runs');
  process.kill(child.pid, 'SIGKILL');
  for (const k of kids) try { process.kill(Number(k), 'SIGKILL'); } catch { /* gone */ }
  await sleep(200);
  expectExit(await run(['databases', 'get', st.db]), 0); // any command against the server cleans up
  const r = await call(ctx.c, 'GET', '/v1/databases/{databaseId}/connections', { params: { path: { databaseId: st.db } } });
  assert.ok(!r.body.data.some((x) => x.id === extra[0].id), 'the killed run\'s connection was deleted');
  assert.equal(fs.readFileSync(path.join(cfg, 'pgfleet/psql-connections'), 'utf8'), '');
});

it('--help on every command (with the exit codes), and bash and zsh completion', async () => {
  const cmds = ['login', 'logout', 'projects list', 'projects create', 'projects get', 'projects delete',
    'databases list', 'databases create', 'databases get', 'databases delete', 'connections list',
    'connections create', 'connections rotate', 'connections delete', 'backups list', 'backups create',
    'restore', 'usage', 'branches list', 'branches create', 'branches get', 'branches delete', 'psql', 'completion'];
  const top = await ok(['--help']);
  for (const c of cmds) {
    const r = await ok([...c.split(' '), '--help']);
    assert.match(r.stdout, new RegExp(`^usage: pgfleet ${c}`), c);
    assert.match(r.stdout, /exit status: 0 done, 1 refused or failed, 2 usage, 3 not found, 4 conflict/, c);
    assert.ok(top.stdout.includes(`pgfleet ${c.split(' ')[0]}`), `pgfleet --help lists ${c}`);
  }
  assert.match((await ok(['projects', '--help'])).stdout, /create/);
  const bash = (await ok(['completion', 'bash'])).stdout;
  const complete = (words) => execFileSync('bash', ['-c', `${bash}\nCOMP_WORDS=(${words}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _pgfleet; echo "\${COMPREPLY[@]}"`], { encoding: 'utf8' }).trim();
  assert.equal(complete('pgfleet proj'), 'projects');
  assert.equal(complete('pgfleet databases create --from-'), '--from-backup --from-database');
  assert.ok(complete('pgfleet se').split(' ').includes('serve'), 'host commands too');
  const zsh = (await ok(['completion', 'zsh'])).stdout;
  assert.match(zsh, /^#compdef pgfleet/);
  try { execFileSync('zsh', ['-n'], { input: zsh }); } catch (e) { if (e.code !== 'ENOENT') throw e; }
  expectExit(await run(['completion', 'fish']), 2);
});

it('projects delete deletes its databases; logout removes the config', async () => {
  expectExit(await run(['projects', 'delete', st.project]), 0);
  expectExit(await run(['databases', 'get', st.db]), 3);
  expectExit(await run(['projects', 'get', st.project]), 3);
  expectExit(await run(['logout']), 0);
  assert.ok(!fs.existsSync(path.join(cfg, 'pgfleet/config')));
  expectExit(await run(['projects', 'list']), 1);
});

ctx.itShutsDownCleanly();
