// Small DOM helpers: elements (text is always set as text, never parsed as HTML), the
// confirm dialog, copy buttons, notices, and the SVG bar chart of the usage panel.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

const SVGNS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

let noticeAt = 0;
// A message above the screen (role=status); the next screen keeps it only when it was set
// just before (an action that navigates: "Project deleted").
export function notice(text, kind = 'info') {
  noticeAt = Date.now();
  const n = document.getElementById('notice');
  n.replaceChildren();
  if (!text) return;
  n.append(h('p', { class: `msg ${kind}` }, text, ' ', h('button', { type: 'button', class: 'link', onclick: () => n.replaceChildren() }, 'Dismiss')));
}

export function errorText(e) {
  if (!e) return 'Unknown error';
  const hint = e.hint ? ` (${e.hint})` : '';
  return `${e.message || e}${hint}`;
}

// Asks again before a destructive action: a modal dialog that names the thing, with Cancel
// focused first. Resolves true only on the confirm button. extra: nodes shown in the dialog
// (e.g. a point-in-time picker), read by the caller after it resolves.
export function confirmDialog({ title, text, action, extra }) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-extra').replaceChildren(...(extra ? [extra] : []));
  const ok = document.getElementById('confirm-ok');
  ok.textContent = action;
  d.returnValue = 'cancel';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

async function writeClipboard(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // no clipboard permission: the old way, through a selected text field
    const t = h('textarea', { class: 'offscreen', readonly: true });
    t.value = text;
    document.body.append(t);
    t.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    t.remove();
    return ok;
  }
}

// A button that copies `text` (a string or a function giving it); says so in its status.
export function copyButton(text, what) {
  const status = h('span', { class: 'copied', role: 'status', 'aria-live': 'polite' });
  const b = h('button', {
    type: 'button',
    class: 'copy',
    'aria-label': `Copy ${what}`,
    onclick: async () => {
      const v = typeof text === 'function' ? text() : text;
      const ok = await writeClipboard(v);
      status.textContent = ok ? 'Copied' : 'Copy failed: select the text and copy it';
      b.dataset.copied = ok ? 'yes' : 'no';
      setTimeout(() => { status.textContent = ''; }, 4000);
    },
  }, 'Copy');
  return h('span', { class: 'copywrap' }, b, status);
}

// A labelled read-only field with a copy button.
export function copyField(label, value, id) {
  return h('div', { class: 'copyfield' },
    h('label', { for: id }, label),
    h('div', { class: 'row' },
      h('input', { id, type: 'text', readonly: true, value, spellcheck: 'false', class: 'mono' }),
      copyButton(value, label)));
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function badge(status) {
  return h('span', { class: `badge st-${String(status).replace(/[^a-z_-]/gi, '')}` }, status);
}

// A bar chart as SVG: one bar per point ({label, value}); the values as text in each bar's
// <title> and in the chart's accessible name.
export function barChart({ title, points, unit, format = (v) => String(v), caption }) {
  const W = 640;
  const H = 200;
  const padL = 56;
  const padB = 34;
  const padT = 14;
  const max = Math.max(1, ...points.map((p) => p.value));
  const n = Math.max(1, points.length);
  const bw = (W - padL - 8) / n;
  const y = (v) => padT + (H - padT - padB) * (1 - v / max);
  const total = points.reduce((a, p) => a + p.value, 0);
  const label = `${title}: ${points.map((p) => `${p.label} ${format(p.value)}`).join(', ')}`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label },
    s('title', {}, `${title} (${unit})`));
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    svg.append(
      s('line', { x1: padL, x2: W - 4, y1: y(v), y2: y(v), class: 'grid' }),
      s('text', { x: padL - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, format(v)));
  }
  points.forEach((p, i) => {
    const x = padL + i * bw + 2;
    const top = y(p.value);
    svg.append(s('rect', { x, y: top, width: Math.max(1, bw - 4), height: Math.max(0, H - padB - top), class: 'bar' },
      s('title', {}, `${p.label}: ${format(p.value)} ${unit}`)));
    if (n <= 16 || i % Math.ceil(n / 8) === 0) {
      svg.append(s('text', { x: x + (bw - 4) / 2, y: H - padB + 16, 'text-anchor': 'middle', class: 'axis' }, p.label));
    }
  });
  return h('figure', { class: 'chartbox' }, svg, h('figcaption', {}, caption || `${title}; total ${format(total)} ${unit}`));
}

export function clearOldNotice() {
  if (Date.now() - noticeAt > 1500) document.getElementById('notice').replaceChildren();
}
