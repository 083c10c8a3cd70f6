// The pgfleet web console: screens routed by the URL's hash, each drawn from the same /v1
// API any client uses. Live parts (statuses, backups, the fleet) poll; a poll updates the
// rows in place so keyboard focus stays where it is.
import {
  api, credential, usePastedToken, startSignIn, finishSignIn, signOut, whenSignedOut, foreignIssuer,
} from './api.js';
import {
  h, notice, clearOldNotice, errorText, confirmDialog, copyButton, copyField, fmtTime, fmtBytes, badge, barChart,
} from './ui.js';

const main = document.getElementById('main');
const POLL_MS = 2000;
let timers = [];
let generation = 0;
let me = null; // {operator, workspace, user, credential}
// Passwords are shown once: the connection strings of a create or rotate answer, kept here
// (memory only) until the database's screen has shown them.
const secrets = new Map();

function every(ms, fn) {
  const gen = generation;
  let busy = false;
  const t = setInterval(async () => {
    if (gen !== generation || busy) return;
    busy = true;
    try { await fn(); } catch (e) { if (gen === generation) notice(errorText(e), 'error'); } finally { busy = false; }
  }, ms);
  timers.push(t);
}

function screen(title, ...nodes) {
  document.title = `${title} · pgfleet console`;
  main.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
  const h1 = main.querySelector('h1');
  if (h1) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({ preventScroll: true });
  }
}

async function listAll(path, pages = 10) {
  const out = [];
  let cursor = null;
  for (let i = 0; i < pages; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const r = await api('GET', cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    out.push(...(r.data || []));
    cursor = r.pagination && r.pagination.nextCursor;
    if (!cursor) break;
  }
  return out;
}

function section(title, ...body) {
  const id = `sec-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), ...body);
}

function field(label, input) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

function table(caption, heads, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'scroll' }, h('table', {},
    h('caption', { class: 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, heads.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows)));
}

// Runs a button's action with the button disabled meanwhile; errors go to the notice.
async function busy(button, fn) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } catch (e) {
    notice(errorText(e), 'error');
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

// ---- identity, navigation ----

async function whoami() {
  if (me) return me;
  try {
    const r = await api('GET', '/v1/me');
    me = { operator: false, ...r.data };
  } catch (e) {
    if (e.status === 403 && e.hint === 'operator') me = { operator: true };
    else throw e;
  }
  return me;
}

function drawChrome() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  nav.replaceChildren();
  who.replaceChildren();
  if (!credential()) return;
  const here = location.hash || '#/projects';
  const link = (href, text) => h('a', { href, 'aria-current': here.startsWith(href) ? 'page' : null }, text);
  if (me && !me.operator) nav.append(link('#/projects', 'Projects'));
  nav.append(link('#/fleet', 'Fleet'));
  const label = me && me.operator ? 'Operator (read-only, whole fleet)'
    : me ? `${me.workspace ? me.workspace.name : ''} · ${me.user ? me.user.email : (me.credential && me.credential.type) || ''}` : '';
  who.append(h('span', { class: 'muted' }, label), ' ',
    h('button', { type: 'button', onclick: async () => { await signOut(); me = null; location.hash = '#/signin'; } }, 'Sign out'));
}

// ---- sign-in ----

async function signInScreen() {
  const other = await foreignIssuer().catch(() => null);
  const tokenInput = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, id: 'token' });
  const form = h('form', {
    id: 'token-form',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        usePastedToken(tokenInput.value);
        tokenInput.value = '';
        me = null;
        const who = await whoami();
        location.hash = who.operator ? '#/fleet' : '#/projects';
      } catch (e) {
        notice(errorText(e), 'error');
      }
    },
  }, field('Service token or operator token', tokenInput), h('button', { type: 'submit' }, 'Use this token'));
  const signIn = h('button', { type: 'button', id: 'signin', class: 'primary', onclick: (ev) => busy(ev.currentTarget, () => startSignIn('#/projects')) }, 'Sign in');
  screen('Sign in',
    h('h1', {}, 'Sign in to pgfleet'),
    other ? h('p', { class: 'msg error' }, `This server's public URL is ${other}: open the console there to sign in (the sign-in returns to it).`) : null,
    section('With your account', h('p', {}, 'Signs in on this server\'s sign-in page and asks you to allow the console into one workspace.'), signIn),
    section('With a token', h('p', {}, 'A workspace\'s service token, or an operator token made on the host with ', h('code', {}, 'pgfleet token create --operator'), '. It is kept in this tab only.'), form));
}

// ---- projects ----

async function projectsScreen() {
  const [projects, regions] = await Promise.all([
    listAll('/v1/projects'),
    api('GET', '/v1/regions/postgres').then((r) => r.data).catch(() => []),
  ]);
  const name = h('input', { type: 'text', required: true, maxlength: 255, id: 'project-name', autocomplete: 'off' });
  const region = h('select', { id: 'project-region' },
    regions.filter((r) => r.status === 'available').map((r) => h('option', { value: r.id }, `${r.name} (${r.id})`)));
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create project');
  const form = h('form', {
    id: 'create-project',
    class: 'inline',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(submit, async () => {
        const r = await api('POST', '/v1/projects', { name: name.value, region: region.value || undefined });
        const db = r.data.database;
        if (db) {
          keepSecret(db.id, 'the new project\'s database', db.connections && db.connections[0]);
          location.hash = `#/databases/${db.id}`;
        } else {
          location.hash = `#/projects/${r.data.id}`;
        }
      });
    },
  }, field('Name', name), field('Region', region), submit);
  const withExpiry = projects.some((p) => 'expiresAt' in p);
  const rows = projects.map((p) => h('tr', {},
    h('td', {}, h('a', { href: `#/projects/${p.id}` }, p.name)),
    h('td', { class: 'mono' }, p.id),
    h('td', {}, p.defaultRegion ? p.defaultRegion.id || p.defaultRegion : '—'),
    h('td', {}, fmtTime(p.createdAt)),
    withExpiry ? h('td', {}, p.expiresAt ? fmtTime(p.expiresAt) : 'never') : null));
  screen('Projects',
    h('h1', {}, 'Projects'),
    section('Create a project', h('p', { class: 'muted' }, 'A project starts with a default database; its password is shown once, on the next page.'), form),
    section('All projects', table('Projects', ['Name', 'Id', 'Region', 'Created', ...(withExpiry ? ['Expires'] : [])], rows, 'No projects yet.')));
}

// ---- a project: branches and databases, live ----

function dbRow(d) {
  return h('tr', { 'data-id': d.id },
    h('td', {}, h('a', { href: `#/databases/${d.id}` }, d.name)),
    h('td', { class: 'mono' }, d.id),
    h('td', { class: 'status' }, badge(d.status)),
    h('td', {}, d.region ? d.region.id : '—'),
    h('td', {}, d.isDefault ? 'yes' : ''),
    h('td', {}, fmtTime(d.createdAt)));
}

async function projectScreen(id) {
  const [p, branches, dbs] = await Promise.all([
    api('GET', `/v1/projects/${encodeURIComponent(id)}`).then((r) => r.data),
    listAll(`/v1/projects/${encodeURIComponent(id)}/branches`),
    listAll(`/v1/projects/${encodeURIComponent(id)}/databases`),
  ]);
  const tbody = h('tbody', {}, dbs.map(dbRow));
  const dbTable = h('table', { id: 'databases' },
    h('caption', { class: 'sr-only' }, 'Databases'),
    h('thead', {}, h('tr', {}, ['Name', 'Id', 'Status', 'Region', 'Default', 'Created'].map((x) => h('th', { scope: 'col' }, x)))),
    tbody);
  const dbName = h('input', { type: 'text', maxlength: 255, id: 'database-name', autocomplete: 'off' });
  const branch = h('select', { id: 'database-branch' }, branches.map((b) => h('option', { value: b.id }, `${b.gitName}${b.isDefault ? ' (default)' : ''}`)));
  const add = h('button', { type: 'submit' }, 'Create database');
  const form = h('form', {
    class: 'inline',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(add, async () => {
        const body = { branchId: branch.value || undefined };
        if (dbName.value) body.name = dbName.value;
        const r = await api('POST', `/v1/projects/${encodeURIComponent(id)}/databases`, body);
        keepSecret(r.data.id, 'the new database', r.data.connections && r.data.connections[0]);
        location.hash = `#/databases/${r.data.id}`;
      });
    },
  }, field('Name (optional)', dbName), field('Branch', branch), add);
  const del = h('button', {
    type: 'button',
    class: 'danger',
    onclick: async (ev) => {
      const ok = await confirmDialog({
        title: 'Delete project?',
        text: `Delete project “${p.name}” (${p.id}) with all its databases, connections and backups? This cannot be undone.`,
        action: `Delete project ${p.name}`,
      });
      if (!ok) return;
      await busy(ev.target, async () => {
        await api('DELETE', `/v1/projects/${encodeURIComponent(id)}`);
        notice(`Project ${p.name} deleted.`);
        location.hash = '#/projects';
      });
    },
  }, 'Delete project…');
  screen(p.name,
    h('p', { class: 'crumbs' }, h('a', { href: '#/projects' }, 'Projects'), ' / '),
    h('h1', {}, p.name),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Id'), h('dd', { class: 'mono' }, p.id),
      h('dt', {}, 'Created'), h('dd', {}, fmtTime(p.createdAt)),
      'expiresAt' in p ? [h('dt', {}, 'Expires'), h('dd', { id: 'project-expires' }, p.expiresAt ? fmtTime(p.expiresAt) : 'never')] : null),
    section('Databases', h('p', { class: 'muted', id: 'live-note' }, 'Statuses update live.'), dbTable, form),
    section('Branches', table('Branches', ['Git name', 'Role', 'Default', 'Id', 'Created'], branches.map((b) => h('tr', {},
      h('td', {}, b.gitName), h('td', {}, b.role || '—'), h('td', {}, b.isDefault ? 'yes' : ''), h('td', { class: 'mono' }, b.id), h('td', {}, fmtTime(b.createdAt)))), 'No branches.')),
    section('Danger zone', del));
  every(POLL_MS, async () => {
    const now = await listAll(`/v1/projects/${encodeURIComponent(id)}/databases`);
    const have = [...tbody.children].map((tr) => tr.dataset.id).join(',');
    if (have !== now.map((d) => d.id).join(',')) {
      tbody.replaceChildren(...now.map(dbRow));
      return;
    }
    now.forEach((d, i) => {
      const cell = tbody.children[i].querySelector('.status');
      if (cell.textContent !== d.status) cell.replaceChildren(badge(d.status));
    });
  });
}

// ---- a database ----

function keepSecret(dbId, what, conn) {
  if (!conn || !conn.endpoints) return;
  const direct = conn.endpoints.direct && conn.endpoints.direct.connectionString;
  const pooled = conn.endpoints.pooled && conn.endpoints.pooled.connectionString;
  if (direct || pooled) secrets.set(dbId, { what, name: conn.name, id: conn.id, direct, pooled });
}

function secretPanel(dbId) {
  const sct = secrets.get(dbId);
  if (!sct) return null;
  secrets.delete(dbId);
  const panel = h('section', { class: 'panel secret', id: 'secret', 'aria-labelledby': 'secret-title' },
    h('h2', { id: 'secret-title' }, `Password of ${sct.name} (${sct.what}) — shown once`),
    h('p', {}, 'Copy these now: pgfleet keeps only a verifier of the password and cannot show it again. Rotate the connection for a new one.'),
    sct.direct ? copyField('Direct connection string', sct.direct, 'secret-direct') : null,
    sct.pooled ? copyField('Pooled connection string (PgBouncer)', sct.pooled, 'secret-pooled') : null,
    h('button', { type: 'button', onclick: () => panel.remove() }, 'I have copied it; hide'));
  return panel;
}

// what this server's connection strings end with (its TLS mode: `?sslmode=require`, or
// nothing), read once from /console/settings.json
let settingsPromise = null;
function consoleSettings() {
  settingsPromise ??= fetch('/console/settings.json').then(async (r) => {
    if (!r.ok) throw new Error(`console settings: HTTP ${r.status}`);
    return r.json();
  }).catch((e) => { settingsPromise = null; throw e; });
  return settingsPromise;
}

function template(host, port, dbname, query) {
  return `postgresql://USER:PASSWORD@${host}:${port}/${dbname}${query}`;
}

async function usagePanel(dbId) {
  const days = 14;
  const today = new Date();
  const dates = [];
  for (let i = days - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    dates.push(d.toISOString().slice(0, 10));
  }
  const per = await Promise.all(dates.map((d) => api('GET', `/v1/databases/${encodeURIComponent(dbId)}/usage?startDate=${d}&endDate=${d}`)));
  const month = await api('GET', `/v1/databases/${encodeURIComponent(dbId)}/usage`);
  const ops = per.map((u, i) => ({ label: dates[i].slice(5), value: u.data ? u.data.metrics.operations.used : u.metrics.operations.used }));
  const storage = per.map((u, i) => ({ label: dates[i].slice(5), value: (u.data || u).metrics.storage.used * 1024 }));
  const m = (month.data || month).metrics;
  return {
    node: h('div', { id: 'usage' },
      barChart({ title: 'Operations per day', points: ops, unit: 'transactions', format: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)) }),
      barChart({ title: 'Storage at the day\'s last sample', points: storage, unit: 'MiB', format: (v) => v.toFixed(1), caption: 'Storage (MiB) at each day\'s last sample' }),
      h('p', { class: 'muted', id: 'usage-month' }, `This month: ${m.operations.used} operations, ${fmtBytes(m.storage.used * 1024 ** 3)} stored.`)),
    month: m,
  };
}

function restoreDialogExtra(backup) {
  const when = h('input', { type: 'datetime-local', step: '1', id: 'pitr-time', disabled: true });
  const latest = h('input', { type: 'radio', name: 'pitr', id: 'pitr-latest', value: 'latest', checked: true });
  const pit = h('input', { type: 'radio', name: 'pitr', id: 'pitr-at', value: 'at' });
  const sync = () => { when.disabled = !pit.checked; };
  latest.addEventListener('change', sync);
  pit.addEventListener('change', sync);
  const start = backup.createdAt ? new Date(backup.createdAt) : new Date();
  when.value = start.toISOString().slice(0, 19);
  when.min = start.toISOString().slice(0, 19);
  when.max = new Date().toISOString().slice(0, 19);
  const node = h('fieldset', { class: 'pitr' },
    h('legend', {}, 'Restore to'),
    h('div', {}, latest, h('label', { for: 'pitr-latest' }, 'The end of this backup')),
    h('div', {}, pit, h('label', { for: 'pitr-at' }, 'A point in time (UTC), after the backup ended:')),
    h('div', { class: 'field' }, h('label', { for: 'pitr-time', class: 'sr-only' }, 'Point in time, UTC'), when));
  return { node, pointInTime: () => (pit.checked && when.value ? `${when.value.length === 16 ? `${when.value}:00` : when.value}Z` : null) };
}

async function databaseScreen(id) {
  const path = `/v1/databases/${encodeURIComponent(id)}`;
  const [dbr, conns, backups, settings] = await Promise.all([
    api('GET', path),
    listAll(`${path}/connections`),
    api('GET', `${path}/backups`),
    consoleSettings(),
  ]);
  let d = dbr.data;
  const statusCell = h('span', { id: 'db-status', 'aria-live': 'polite' }, badge(d.status));
  const secret = secretPanel(id);
  const first = conns[0] || (d.connections || [])[0];
  const direct = first && first.endpoints && first.endpoints.direct;
  const pooled = first && first.endpoints && first.endpoints.pooled;

  // connections
  const connBody = h('tbody');
  const drawConns = (list) => connBody.replaceChildren(...list.map((c) => h('tr', { 'data-id': c.id },
    h('td', {}, c.name), h('td', { class: 'mono' }, c.id), h('td', {}, fmtTime(c.createdAt)),
    h('td', { class: 'actions' },
      h('button', {
        type: 'button',
        'aria-label': `Rotate the password of ${c.name}`,
        class: 'rotate',
        onclick: async (ev) => {
          const ok = await confirmDialog({ title: 'Rotate password?', text: `Rotate the password of connection “${c.name}” (${c.id})? The current password stops working at once.`, action: `Rotate ${c.name}` });
          if (!ok) return;
          await busy(ev.target, async () => {
            const r = await api('POST', `/v1/connections/${encodeURIComponent(c.id)}/rotate`);
            keepSecret(id, 'rotated', r.data);
            await render();
          });
        },
      }, 'Rotate'),
      ' ',
      h('button', {
        type: 'button',
        class: 'danger revoke',
        'aria-label': `Revoke ${c.name}`,
        onclick: async (ev) => {
          const ok = await confirmDialog({ title: 'Revoke connection?', text: `Revoke connection “${c.name}” (${c.id}) of ${d.name}? Its sessions end and its password stops working.`, action: `Revoke ${c.name}` });
          if (!ok) return;
          await busy(ev.target, async () => {
            await api('DELETE', `/v1/connections/${encodeURIComponent(c.id)}`);
            notice(`Connection ${c.name} revoked.`);
            await render();
          });
        },
      }, 'Revoke')))));
  drawConns(conns);
  const connName = h('input', { type: 'text', required: true, maxlength: 255, id: 'connection-name', autocomplete: 'off' });
  const connAdd = h('button', { type: 'submit' }, 'Create connection');
  const connForm = h('form', {
    class: 'inline',
    id: 'create-connection',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(connAdd, async () => {
        const r = await api('POST', `${path}/connections`, { name: connName.value });
        keepSecret(id, 'new connection', r.data);
        await render();
      });
    },
  }, field('Name', connName), connAdd);

  // backups
  const backupBody = h('tbody');
  const drawBackups = (list) => backupBody.replaceChildren(...list.map((b) => h('tr', { 'data-id': b.id },
    h('td', { class: 'mono' }, b.id), h('td', {}, b.backupType), h('td', { class: 'status' }, badge(b.status)),
    h('td', {}, fmtTime(b.createdAt)), h('td', {}, b.size !== undefined ? fmtBytes(b.size) : '—'),
    h('td', { class: 'actions' }, b.status === 'completed' ? h('button', {
      type: 'button',
      class: 'restore',
      'aria-label': `Restore from backup ${b.id}`,
      onclick: async (ev) => {
        const x = restoreDialogExtra(b);
        const ok = await confirmDialog({
          title: 'Restore database?',
          text: `Restore database “${d.name}” (${d.id}) from backup ${b.id}? Its current data is replaced; its connections keep their passwords.`,
          action: `Restore ${d.name}`,
          extra: x.node,
        });
        if (!ok) return;
        const source = { type: 'backup', databaseId: id, backupId: b.id };
        const at = x.pointInTime();
        if (at) source.pointInTime = at;
        await busy(ev.target, async () => {
          const r = await api('POST', `${path}/restore`, { source });
          notice(`Restore of ${d.name} started${at ? ` (to ${at})` : ''}.`);
          d = r.data;
          statusCell.replaceChildren(badge(d.status));
          mStatus.textContent = d.status;
        });
      },
    }, 'Restore…') : ''))));
  const backupList = backups.data || [];
  drawBackups(backupList);
  const takeBackup = h('button', {
    type: 'button',
    id: 'take-backup',
    onclick: (ev) => busy(ev.target, async () => {
      await api('POST', `${path}/backups`, { type: 'full' });
      notice('Backup started.');
      drawBackups((await api('GET', `${path}/backups`)).data || []);
    }),
  }, 'Take a backup');

  const usage = await usagePanel(id).catch((e) => ({ node: h('p', { class: 'msg error' }, `Usage: ${errorText(e)}`), month: null }));
  const mStatus = h('dd', { id: 'metric-status' }, d.status);
  const mBackups = h('dd', { id: 'metric-backups' });
  const mLast = h('dd', { id: 'metric-last-backup' });
  const drawBackupMetrics = (list) => {
    const done = list.filter((b) => b.status === 'completed');
    mBackups.textContent = String(done.length);
    mLast.textContent = done.length ? fmtTime(done[0].createdAt) : '—';
  };
  drawBackupMetrics(backupList);
  const metrics = h('dl', { class: 'facts', id: 'metrics' },
    h('dt', {}, 'Status'), mStatus,
    h('dt', {}, 'Operations this month'), h('dd', {}, usage.month ? String(usage.month.operations.used) : '—'),
    h('dt', {}, 'Storage'), h('dd', {}, usage.month ? fmtBytes(usage.month.storage.used * 1024 ** 3) : '—'),
    h('dt', {}, 'Connections'), h('dd', {}, String(conns.length)),
    h('dt', {}, 'Backups kept'), mBackups,
    h('dt', {}, 'Last backup started'), mLast,
    h('dt', {}, 'Retention'), h('dd', {}, backups.meta && backups.meta.backupRetentionDays ? `${backups.meta.backupRetentionDays} days` : '—'));

  const del = h('button', {
    type: 'button',
    class: 'danger',
    disabled: d.isDefault ? true : null,
    onclick: async (ev) => {
      const ok = await confirmDialog({ title: 'Delete database?', text: `Delete database “${d.name}” (${d.id}) with its connections and backups? This cannot be undone.`, action: `Delete ${d.name}` });
      if (!ok) return;
      await busy(ev.target, async () => {
        await api('DELETE', path);
        notice(`Database ${d.name} deleted.`);
        location.hash = `#/projects/${d.project.id}`;
      });
    },
  }, 'Delete database…');

  screen(d.name,
    h('p', { class: 'crumbs' }, h('a', { href: '#/projects' }, 'Projects'), ' / ', h('a', { href: `#/projects/${d.project.id}` }, d.project.name), ' / '),
    h('h1', {}, d.name, ' ', statusCell),
    secret,
    h('dl', { class: 'facts' },
      h('dt', {}, 'Id'), h('dd', { class: 'mono' }, d.id),
      h('dt', {}, 'Region'), h('dd', {}, d.region ? `${d.region.name} (${d.region.id})` : '—'),
      h('dt', {}, 'Created'), h('dd', {}, fmtTime(d.createdAt)),
      h('dt', {}, 'Source'), h('dd', {}, d.source ? `${d.source.type}${d.source.backupId ? ` ${d.source.backupId}` : ''}` : 'empty')),
    section('Connection strings',
      h('p', { class: 'muted' }, 'USER and PASSWORD are a connection\'s; its password is shown once, when it is created or rotated.'),
      direct ? copyField(`Direct (${direct.host}:${direct.port})`, template(direct.host, direct.port, 'postgres', settings.connectionQuery), 'tpl-direct') : null,
      pooled ? copyField(`Pooled, PgBouncer (${pooled.host}:${pooled.port})`, template(pooled.host, pooled.port, d.id, settings.connectionQuery), 'tpl-pooled') : null),
    section('Connections', h('table', { id: 'connections' }, h('caption', { class: 'sr-only' }, 'Connections'),
      h('thead', {}, h('tr', {}, ['Name', 'Id', 'Created', 'Actions'].map((x) => h('th', { scope: 'col' }, x)))), connBody), connForm),
    section('Backups', h('p', {}, takeBackup), h('table', { id: 'backups' }, h('caption', { class: 'sr-only' }, 'Backups'),
      h('thead', {}, h('tr', {}, ['Id', 'Type', 'Status', 'Started', 'Size', 'Actions'].map((x) => h('th', { scope: 'col' }, x)))), backupBody)),
    section('Usage', usage.node),
    section('Metrics', metrics),
    section('Danger zone', d.isDefault ? h('p', { class: 'muted' }, 'The project\'s default database is deleted with its project.') : null, del));

  every(POLL_MS, async () => {
    const r = await api('GET', path);
    if (r.data.status !== d.status) {
      d = r.data;
      statusCell.replaceChildren(badge(d.status));
      mStatus.textContent = d.status;
    }
    const bl = await api('GET', `${path}/backups`);
    const shown = [...backupBody.querySelectorAll('tr')].map((tr) => `${tr.dataset.id}:${tr.querySelector('.status').textContent}`).join(',');
    const now = (bl.data || []).map((b) => `${b.id}:${b.status}`).join(',');
    if (shown !== now) {
      drawBackups(bl.data || []);
      drawBackupMetrics(bl.data || []);
    }
  });
}

// ---- the fleet (operator) ----

function countCards(title, obj) {
  return h('div', { class: 'cards', role: 'group', 'aria-label': title },
    Object.entries(obj).map(([k, v]) => h('div', { class: `card st-${k}` }, h('span', { class: 'num' }, String(v)), h('span', { class: 'lbl' }, k))));
}

function fleetBody(f) {
  const servers = f.servers || {};
  const sleep = {};
  if ('awake' in servers) sleep.awake = servers.awake;
  if ('asleep' in servers) sleep.asleep = servers.asleep;
  const withAwake = f.list.some((d) => 'awake' in d || 'asleep' in d);
  return [
    section('Databases by state', countCards('Databases by status', { total: f.databases.total, ...f.databases.byStatus })),
    section('Servers', countCards('Servers', { running: servers.running ?? '—', stopped: servers.stopped ?? '—', unhealthy: servers.unhealthy ?? '—', ...sleep }),
      h('p', { class: 'muted' }, `Pooler (PgBouncer): ${servers.pooler || 'unknown'}.`)),
    section('Operations in flight', countCards('Operations', f.ops),
      table('Operations in flight', ['Op', 'Kind', 'State', 'Database', 'Workspace', 'Attempts', 'Since', 'Last error'], f.inFlight.map((o) => h('tr', {},
        h('td', { class: 'mono' }, o.id), h('td', {}, o.kind), h('td', {}, badge(o.state)), h('td', { class: 'mono' }, o.databaseId),
        h('td', { class: 'mono' }, o.workspaceId || '—'), h('td', {}, String(o.attempts)), h('td', {}, fmtTime(o.createdAt)), h('td', {}, o.error || ''))), 'Nothing in flight.')),
    section('Failures', table('Failures', ['What', 'Database', 'Workspace', 'Reason', 'When'], f.failures.map((x) => h('tr', {},
      h('td', {}, x.op ? `op ${x.op.kind}` : x.kind), h('td', { class: 'mono' }, `${x.databaseName ? `${x.databaseName} ` : ''}${x.databaseId}`),
      h('td', { class: 'mono' }, x.workspaceId || '—'), h('td', { class: 'reason' }, x.reason), h('td', {}, fmtTime(x.at)))), 'No failures.')),
    section('All databases', table('All databases', ['Database', 'Workspace', 'Status', ...(withAwake ? ['Awake'] : []), 'Port', 'Last backup', 'Health'], f.list.map((d) => h('tr', {},
      h('td', {}, d.name, h('br'), h('span', { class: 'mono muted' }, d.id)), h('td', { class: 'mono' }, d.workspaceId), h('td', {}, badge(d.status)),
      withAwake ? h('td', {}, 'awake' in d ? (d.awake ? 'awake' : 'asleep') : (d.asleep ? 'asleep' : 'awake')) : null,
      h('td', {}, String(d.port)), h('td', {}, fmtTime(d.lastBackupAt)), h('td', {}, d.unhealthy || d.statusReason || 'ok'))), 'No databases.'),
    f.listTruncated ? h('p', { class: 'muted' }, 'Only the first 500 databases are listed.') : null),
  ];
}

async function fleetScreen() {
  let f;
  try {
    f = (await api('GET', '/v1/fleet')).data;
  } catch (e) {
    if (e.status === 403) {
      screen('Fleet', h('h1', {}, 'Fleet'), h('p', { class: 'msg error', id: 'fleet-refused' }, `${e.message}. A workspace credential sees only its own workspace.`));
      return;
    }
    throw e;
  }
  const body = h('div', { id: 'fleet' }, fleetBody(f));
  const stamp = h('p', { class: 'muted', id: 'fleet-stamp' }, `As of ${fmtTime(f.generatedAt)}; updates live.`);
  screen('Fleet', h('h1', {}, 'Fleet'), stamp, body);
  every(3000, async () => {
    const g = (await api('GET', '/v1/fleet')).data;
    const keep = document.activeElement && body.contains(document.activeElement);
    if (!keep) body.replaceChildren(...fleetBody(g));
    stamp.textContent = `As of ${fmtTime(g.generatedAt)}; updates live.`;
  });
}

// ---- routing ----

async function render() {
  clearOldNotice();
  generation++;
  timers.forEach(clearInterval);
  timers = [];
  const gen = generation;
  const hash = location.hash || '#/projects';
  try {
    if (!credential() || hash.startsWith('#/signin')) {
      me = null;
      drawChrome();
      await signInScreen();
      return;
    }
    await whoami();
    drawChrome();
    if (gen !== generation) return;
    let m;
    if (me.operator && !hash.startsWith('#/fleet')) {
      location.replace('#/fleet');
      return;
    }
    if ((m = /^#\/projects\/([^/]+)$/.exec(hash))) await projectScreen(decodeURIComponent(m[1]));
    else if ((m = /^#\/databases\/([^/]+)$/.exec(hash))) await databaseScreen(decodeURIComponent(m[1]));
    else if (hash.startsWith('#/fleet')) await fleetScreen();
    else await projectsScreen();
  } catch (e) {
    if (gen !== generation) return;
    if (e.status === 401) return;
    screen('Error', h('h1', {}, e.status === 404 ? 'Not found' : 'Something went wrong'), h('p', { class: 'msg error' }, errorText(e)),
      h('p', {}, h('a', { href: '#/projects' }, 'Back to projects')));
  }
}

async function boot() {
  whenSignedOut(() => {
    me = null;
    if (!location.hash.startsWith('#/signin')) location.hash = '#/signin';
  });
  if (location.pathname.replace(/\/+$/, '').endsWith('/console/callback')) {
    try {
      const to = await finishSignIn();
      history.replaceState(null, '', `/console/${to}`);
    } catch (e) {
      history.replaceState(null, '', '/console/#/signin');
      notice(errorText(e), 'error');
    }
  }
  window.addEventListener('hashchange', render);
  await render();
}

boot();
