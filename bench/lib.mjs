// Helpers every bench script shares: a free loopback port, a sleep, a percentile.
import { createServer } from 'node:net';

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
