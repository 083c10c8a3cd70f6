// Raw TCP clients for the HTTP limits: idle and slowloris connections from chosen loopback
// source addresses (127.0.0.2 and up: the per-address cap counts them apart from the normal
// client on 127.0.0.1), and one-shot raw requests for what fetch cannot send (no Host, a
// Content-Length without its body, an endless chunked body).
import fs from 'node:fs';
import net from 'node:net';

// The loopback address of connection i when `perAddress` share one, starting at 127.0.0.<first>.
export function loopbackFor(i, perAddress, first = 2) {
  const n = first + Math.floor(i / perAddress);
  if (n < 2 || n > 254) throw new Error(`loopbackFor: 127.0.0.${n} is out of range`);
  return `127.0.0.${n}`;
}

// Opens n connections; resolves with a holder once every one is connected (or failed).
// mode 'idle' sends nothing; 'slowloris' sends a request line, then one header byte every
// `everyMs`, never ending the header. holder.open() counts those not closed by the server.
export async function hold(port, n, { mode = 'idle', perAddress = 40, first = 2, everyMs = 2000 } = {}) {
  const socks = [];
  const timers = [];
  let refusedOrClosed = 0;
  await Promise.all(Array.from({ length: n }, (_, i) => new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: loopbackFor(i, perAddress, first) });
    s.closedByServer = false;
    s.on('error', () => {});
    s.on('close', () => { s.closedByServer = true; refusedOrClosed++; resolve(); });
    s.on('data', () => {});
    s.once('connect', () => {
      if (mode === 'slowloris') {
        s.write('GET /v1/regions HTTP/1.1\r\nHost: pgfleet\r\n');
        const t = setInterval(() => { if (!s.destroyed) s.write('X'); }, everyMs);
        timers.push(t);
      }
      resolve();
    });
    socks.push(s);
  })));
  return {
    socks,
    open: () => socks.filter((s) => !s.closedByServer && !s.destroyed).length,
    closed: () => refusedOrClosed,
    close: () => {
      for (const t of timers) clearInterval(t);
      for (const s of socks) s.destroy();
    },
  };
}

// Sends `text` (a string or Buffer, or an array of them sent `gapMs` apart) on a new
// connection; resolves with what came back within timeoutMs: { status, head, body, closed, ms }.
export function rawRequest(port, text, { localAddress, timeoutMs = 5000, gapMs = 0 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    let buf = Buffer.alloc(0);
    let closed = false;
    let timer;
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      s.destroy();
      const text = buf.toString('latin1');
      const i = text.indexOf('\r\n\r\n');
      const head = i >= 0 ? text.slice(0, i) : text;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ status: m ? Number(m[1]) : null, head, body: i >= 0 ? text.slice(i + 4) : '', closed, ms: Date.now() - t0 });
    };
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      // a whole answer (Content-Length bytes after the header) ends the wait
      const t = buf.toString('latin1');
      const i = t.indexOf('\r\n\r\n');
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(t.slice(0, i));
      if (i >= 0 && cl && buf.length >= i + 4 + Number(cl[1])) done();
    });
    s.on('error', () => {});
    s.on('close', () => { closed = true; done(); });
    timer = setTimeout(done, timeoutMs);
    s.once('connect', async () => {
      const parts = Array.isArray(text) ? text : [text];
      for (const p of parts) {
        if (s.destroyed) break;
        s.write(p);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

// The server's thread count and resident memory (kB) from /proc.
export function procStatus(pid) {
  const txt = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    threads: Number(/\nThreads:\s+(\d+)/.exec(txt)?.[1]),
    rssKb: Number(/\nVmRSS:\s+(\d+)/.exec(txt)?.[1]),
  };
}
