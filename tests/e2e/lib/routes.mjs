// The route table pgfleet is built with (src/api/routes.c): {method, path, handler, public}
// per row, read from its {"METHOD", "/path", handler, FLAGS} lines.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export function readRoutes(file = path.join(root, 'src/api/routes.c')) {
  const text = fs.readFileSync(file, 'utf8');
  const from = text.indexOf('routes[] = {');
  const table = text.slice(from, text.indexOf('};', from));
  const out = [];
  for (const m of table.matchAll(/\{\s*"([A-Z]+)",\s*"([^"]+)",\s*(\w+),\s*([^}]+)\}/g)) {
    out.push({ method: m[1], path: m[2], handler: m[3], public: /HTTP_PUBLIC/.test(m[4]) });
  }
  if (!out.length) throw new Error(`no routes read from ${file}`);
  return out;
}
