// Runs the pgfleet CLI (the commands over the API) as a user would: its own config
// directory (XDG_CONFIG_HOME), stdin given or closed, optionally under a pseudo-terminal
// (util-linux `script`). Resolves { code, stdout, stderr } whatever the exit status; a
// sanitizer report fails.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { BIN, SANITIZER_ENV } from './server.mjs';

const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)|runtime error: /;

const shq = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;

export function pgfleet(args, { env = {}, input, tty = false, timeoutMs = 60000 } = {}) {
  const fullEnv = { ...process.env, ...SANITIZER_ENV, PGFLEET_URL: '', PGFLEET_TOKEN: '', ...env };
  const [cmd, argv] = tty ? ['script', ['-qfec', [BIN, ...args].map(shq).join(' '), '/dev/null']] : [BIN, args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env: fullEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      const what = `pgfleet ${args.join(' ')}`;
      if (SANITIZER_RE.test(stderr) || SANITIZER_RE.test(stdout)) return reject(new Error(`${what}: sanitizer report:\n${stderr}${stdout}`));
      resolve({ code: signal ? -1 : code, signal, stdout, stderr, what });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
    child.pid && (child.stdin.on('error', () => {}));
  });
}

// Asserts the exit status, with the output in the message.
export function expectExit(r, code) {
  assert.equal(r.code, code, `${r.what}: exit ${r.code}, expected ${code}\nstdout: ${r.stdout.slice(0, 1500)}\nstderr: ${r.stderr.slice(0, 1500)}`);
  return r;
}

// The rows of an aligned table: [{HEADER: value}], columns cut where the header line has
// them (two spaces apart).
export function parseTable(text) {
  const lines = text.split('\n').filter((l) => l.trim());
  const header = lines[0];
  const starts = [...header.matchAll(/(^|\s{2,})(\S[^\s]*(?: \S+)*)/g)].map((m) => m.index + m[1].length);
  const names = starts.map((s, i) => header.slice(s, starts[i + 1]).trim());
  return lines.slice(1).map((l) => Object.fromEntries(names.map((n, i) => [n, l.slice(starts[i], starts[i + 1]).trim()])));
}
