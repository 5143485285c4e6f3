// The orca web page: the clusters, each cluster's replication tree drawn
// live from the API's streams, the operations on it (each planned by the
// API's dry run, then confirmed), and the history from the store.
// No framework: the DOM is built with el(), and every text from the API
// goes in as text, never as markup.
'use strict';

// Operations on a whole cluster, and those on one instance (with a
// destination for some). The names are the API's; the list of kinds
// the API takes comes from its OpenAPI document.
const CLUSTER_OPS = ['graceful-takeover', 'force-failover', 'recover', 'acknowledge'];
const NEEDS_DESTINATION = ['relocate', 'move-below'];
const TAKES_DESTINATION = ['relocate', 'move-below', 'repoint'];
const NO_PLAN = ['recover', 'acknowledge', 'begin-downtime', 'end-downtime'];
const SEVERITY_RANK = { critical: 3, warning: 2, info: 1, '': 0 };

let kinds = [];
let leaving = () => {};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function token() {
  return sessionStorage.getItem('orca.token') || '';
}

function headers(extra) {
  const h = Object.assign({ Accept: 'application/json' }, extra || {});
  const t = token();
  // Authorization does not pass the Kubernetes API server's service
  // proxy; the API reads this header as well.
  if (t) h['X-Orca-Authorization'] = 'Bearer ' + t;
  return h;
}

async function api(path, options) {
  const o = Object.assign({}, options || {});
  o.headers = headers(o.body ? { 'Content-Type': 'application/json' } : {});
  // A little past the API's own bounds (10 s to read, 300 s for an
  // operation), so a lost answer is reported instead of awaited forever.
  o.signal = AbortSignal.timeout(o.method === 'POST' ? 320000 : 20000);
  let r;
  try {
    r = await fetch('api/v1/' + path, o);
  } catch (e) {
    return { status: 0, body: { error: 'the API did not answer: ' + e.message } };
  }
  let body;
  try {
    body = await r.json();
  } catch (e) {
    body = { error: 'the API answered ' + r.status + ' without JSON' };
  }
  return { status: r.status, body };
}

function notice(text, kind) {
  const n = document.getElementById('notice');
  n.textContent = text || '';
  n.className = 'notice ' + (kind || 'error') + (text ? '' : ' hidden');
}

function live(on) {
  document.getElementById('live').classList.toggle('on', on);
}

// Reads a server-sent-events stream with fetch (EventSource cannot send
// the token), calling handlers[event](data); reconnects after a pause.
function stream(path, handlers) {
  const ctl = new AbortController();
  let stopped = false;
  (async () => {
    while (!stopped) {
      try {
        const r = await fetch('api/v1/' + path, {
          headers: headers({ Accept: 'text/event-stream' }),
          signal: ctl.signal,
        });
        if (!r.ok) {
          let why = 'the stream answered ' + r.status;
          try { why = (await r.json()).error || why; } catch (e) { /* not JSON */ }
          notice(why);
          live(false);
          if (r.status === 401 || r.status === 403) showToken();
        } else {
          live(true);
          const reader = r.body.getReader();
          const text = new TextDecoder();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += text.decode(value, { stream: true });
            let cut;
            while ((cut = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, cut);
              buf = buf.slice(cut + 2);
              let event = 'message';
              const data = [];
              for (const line of block.split('\n')) {
                if (line.startsWith('event:')) event = line.slice(6).trim();
                else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
              }
              if (data.length && handlers[event]) {
                try { handlers[event](JSON.parse(data.join('\n'))); } catch (e) { console.error(e); }
              }
            }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      live(false);
      await new Promise((res) => setTimeout(res, 1500));
    }
  })();
  return () => { stopped = true; ctl.abort(); live(false); };
}

function crumbs(...parts) {
  const c = document.getElementById('crumbs');
  c.replaceChildren(...parts.map((p, i) => el('span', {}, i ? ' / ' : '', p)));
}

function badge(text, kind, title) {
  return el('span', { class: 'badge ' + (kind || ''), title }, text);
}

function short(gtid) {
  if (!gtid) return '';
  const s = String(gtid).replace(/\s+/g, '');
  return s.length > 34 ? s.slice(0, 14) + '…' + s.slice(-16) : s;
}

function lag(ms) {
  if (ms === null || ms === undefined) return '—';
  return ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(1) + ' s';
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

// ---------------------------------------------------------------- clusters

function clustersPage(main) {
  crumbs(el('a', { href: '#/' }, 'Clusters'));
  main.replaceChildren(el('p', { class: 'muted' }, 'Waiting for the clusters…'));
  return stream('stream/clusters', {
    clusters: (list) => {
      notice('');
      if (!list.items.length) {
        main.replaceChildren(el('p', { class: 'muted' }, 'No cluster is watched by this orca.'));
        return;
      }
      main.replaceChildren(el('section', { class: 'cards', id: 'clusters' }, list.items.map(card)));
    },
  });
}

function card(c) {
  const href = '#/clusters/' + encodeURIComponent(c.namespace) + '/' + encodeURIComponent(c.name);
  const auto = c.automaticFailover === null || c.automaticFailover === undefined
    ? badge('failover: ?', '', 'the leader knows')
    : badge(c.automaticFailover ? 'auto failover' : 'manual failover', c.automaticFailover ? 'ok' : 'warning');
  return el('a', { class: 'card ' + (c.healthy ? 'healthy' : 'unhealthy'), href, dataset: { cluster: c.namespace + '/' + c.name } },
    el('h2', {}, el('span', { class: 'muted' }, c.namespace + '/'), c.name),
    el('div', { class: 'row' }, badge(c.healthy ? 'Healthy' : 'Problems', c.healthy ? 'ok' : 'critical'), auto),
    el('dl', {},
      el('dt', {}, 'primary'), el('dd', { class: 'primary' }, c.primaryPod || c.primary || 'none'),
      el('dt', {}, 'instances'), el('dd', {}, c.instances),
      el('dt', {}, 'operation'), el('dd', {}, c.operation ? c.operation.kind + (c.operation.target ? ' → ' + c.operation.target : '') : '—')),
    el('div', { class: 'row' }, c.findings.map((f) => badge(f, 'warning'))));
}

// ----------------------------------------------------------------- cluster

function clusterPage(main, ns, name) {
  const path = encodeURIComponent(ns) + '/' + encodeURIComponent(name);
  crumbs(el('a', { href: '#/' }, 'Clusters'), el('a', { href: '#/clusters/' + path }, ns + '/' + name));
  main.replaceChildren(el('p', { class: 'muted' }, 'Waiting for the topology…'));
  const ctx = { ns, name, path, view: null, drag: null, pressed: false, pending: null, verdicts: new Map() };
  ctx.redraw = () => {
    if (!ctx.pending || ctx.drag || ctx.pressed) return;
    ctx.view = ctx.pending;
    ctx.pending = null;
    ctx.verdicts.clear();
    drawCluster(main, ctx);
  };
  // A box pressed but not yet dragged must stay the same box, or the
  // drag it starts never begins: a redraw waits for the button to go up.
  const released = () => { if (!ctx.pressed) return; ctx.pressed = false; ctx.redraw(); };
  window.addEventListener('mouseup', released, true);
  const stop = stream('stream/clusters/' + path, {
    cluster: (view) => {
      // Redrawing under a drag would take its boxes away: the view
      // waits for the drag to end.
      if (ctx.drag || ctx.pressed) { ctx.pending = view; return; }
      ctx.view = view;
      ctx.verdicts.clear();
      drawCluster(main, ctx);
    },
    gone: () => {
      notice('This cluster is no longer watched.', 'info');
    },
  });
  return () => { window.removeEventListener('mouseup', released, true); stop(); };
}

function instanceName(i) {
  return i.pod || i.key;
}

// The API names severities `Critical`, `Warning`, `Info`.
function sev(f) {
  return (f.severity || 'info').toLowerCase();
}

function worstSeverity(findings) {
  return findings.reduce((w, f) => (SEVERITY_RANK[sev(f)] > SEVERITY_RANK[w] ? sev(f) : w), '');
}

function drawCluster(main, ctx) {
  const v = ctx.view;
  const byKey = new Map(v.instances.map((i) => [i.key, i]));
  const roots = v.instances.filter((i) => !i.source || !byKey.has(i.source));
  const head = el('section', { class: 'cluster-head' },
    el('h1', {}, v.namespace + '/' + v.name),
    el('div', { class: 'row' },
      badge(v.healthy ? 'Healthy' : 'Problems', v.healthy ? 'ok' : 'critical'),
      v.automaticFailover === null || v.automaticFailover === undefined ? null
        : badge(v.automaticFailover ? 'auto failover' : 'manual failover', v.automaticFailover ? 'ok' : 'warning'),
      v.operation ? badge('running: ' + v.operation.kind, 'info') : null,
      el('span', { class: 'muted' }, 'observed ' + new Date(v.observedAt).toLocaleTimeString())),
    el('div', { class: 'row ops' }, CLUSTER_OPS.filter((k) => kinds.includes(k)).map((k) =>
      el('button', { type: 'button', dataset: { kind: k }, onclick: () => operate(ctx, { kind: k }) }, k)),
    el('a', { class: 'button', href: '#/clusters/' + ctx.path + '/history' }, 'History')),
    el('p', { class: 'muted hint' }, 'Click an instance for its details and operations; drag it onto another to relocate it below that one.'));
  const findings = v.findings.length
    ? el('ul', { class: 'findings' }, v.findings.map((f) =>
      el('li', { class: 'sev-' + sev(f) }, el('b', {}, f.code), ' ', f.description)))
    : null;
  const tree = el('div', { class: 'tree', id: 'tree' }, el('ul', {}, roots.map((r) => branch(ctx, r, byKey, new Set()))));
  const recent = v.recentOperations.length
    ? el('section', {}, el('h3', {}, 'Recent operations'),
      el('ul', { class: 'recent' }, v.recentOperations.slice().reverse().map((o) =>
        el('li', {}, el('b', {}, o.kind), ' ', badge(o.outcome, o.outcome === 'succeeded' ? 'ok' : 'warning'),
          ' ', o.startedAt, ' (' + o.durationMs + ' ms)', o.successor ? ' → ' + o.successor : ''))))
    : null;
  main.replaceChildren(...[head, findings, tree, recent].filter(Boolean));
}

function branch(ctx, i, byKey, seen) {
  seen.add(i.key);
  const kids = i.replicas.map((k) => byKey.get(k)).filter((c) => c && !seen.has(c.key));
  return el('li', {}, box(ctx, i), kids.length ? el('ul', {}, kids.map((c) => branch(ctx, c, byKey, seen))) : null);
}

function box(ctx, i) {
  const v = ctx.view;
  const s = i.snapshot || {};
  const r = s.replica || null;
  const problems = v.findings.filter((f) => f.instance === i.key || f.replicas.includes(i.key));
  const worst = worstSeverity(problems);
  const k8s = i.kubernetes;
  const writable = i.readOnly === false;
  const b = el('div', {
    class: 'node role-' + i.role + (i.reachable ? '' : ' unreachable') + (worst ? ' sev-' + worst : ''),
    draggable: 'true',
    tabindex: '0',
    dataset: { key: i.key, pod: i.pod || '', role: i.role },
    onclick: () => instanceDialog(ctx, i),
    onkeydown: (e) => { if (e.key === 'Enter') instanceDialog(ctx, i); },
    onmousedown: (e) => { if (e.button === 0) ctx.pressed = true; },
    ondragstart: (e) => {
      ctx.pressed = false;
      ctx.drag = i;
      e.dataTransfer.effectAllowed = 'move';
      e.dataTransfer.setData('text/plain', i.key);
      b.classList.add('dragging');
    },
    ondragend: () => { ctx.drag = null; b.classList.remove('dragging'); clearDrop(); ctx.redraw(); },
    ondragenter: (e) => { if (ctx.drag && ctx.drag.key !== i.key) { e.preventDefault(); judge(ctx, ctx.drag, i, b); } },
    ondragover: (e) => { if (ctx.drag && ctx.drag.key !== i.key) { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; } },
    ondragleave: () => { b.classList.remove('drop-legal', 'drop-illegal', 'drop-asking'); },
    ondrop: (e) => {
      e.preventDefault();
      const d = ctx.drag;
      ctx.drag = null;
      clearDrop();
      if (d && d.key !== i.key) dropped(ctx, d, i);
      ctx.redraw();
    },
  },
  el('div', { class: 'title' }, el('b', {}, instanceName(i)), ' ', badge(i.role, 'role')),
  el('div', { class: 'addr muted' }, i.key),
  el('div', { class: 'row' },
    badge(i.reachable ? (writable ? 'writable' : 'read only') : 'unreachable', i.reachable ? (writable ? 'rw' : 'ro') : 'critical'),
    s.version ? el('span', { class: 'muted' }, s.version.raw.split('-').slice(0, 2).join('-')) : null),
  r ? el('div', {}, 'IO ', badge(r.io_running, r.io_running === 'yes' ? 'ok' : 'critical'),
    ' SQL ', badge(r.sql_running ? 'yes' : 'no', r.sql_running ? 'ok' : 'critical'), ' lag ', lag(i.lagMs)) : null,
  s.gtid && (s.gtid.executed || s.gtid.binlog_pos)
    ? el('div', { class: 'gtid', title: String(s.gtid.executed || s.gtid.binlog_pos) }, 'GTID ', short(s.gtid.executed || s.gtid.binlog_pos)) : null,
  i.errant ? el('div', { class: 'errant' }, 'errant ', short(i.errant)) : null,
  i.downtimed ? badge('downtime', 'warning') : null,
  i.promotionRule && i.promotionRule !== 'neutral' ? badge('promotion: ' + i.promotionRule, 'info') : null,
  k8s ? el('div', { class: 'k8s muted' }, (k8s.phase || '?') + (k8s.ready ? ', ready' : ', not ready'),
    ', ' + k8s.restarts + ' restarts', k8s.node ? ', on ' + k8s.node : '') : null,
  i.error ? el('div', { class: 'error' }, i.error) : null,
  problems.length ? el('ul', { class: 'problems' }, problems.map((f) => el('li', { class: 'sev-' + sev(f) }, f.code))) : null,
  el('div', { class: 'verdict' }));
  return b;
}

function clearDrop() {
  for (const n of document.querySelectorAll('.node')) n.classList.remove('drop-legal', 'drop-illegal', 'drop-asking');
}

// Whether dropping `moved` on `onto` is legal: the API's dry run of the
// relocation, asked once per pair while the topology stays the same.
function verdict(ctx, moved, onto) {
  const key = moved.key + '>' + onto.key;
  if (!ctx.verdicts.has(key)) {
    ctx.verdicts.set(key, api('clusters/' + ctx.path + '/operations', {
      method: 'POST',
      body: JSON.stringify({ kind: 'relocate', target: instanceName(moved), destination: instanceName(onto), dryRun: true }),
    }));
  }
  return ctx.verdicts.get(key);
}

async function judge(ctx, moved, onto, node) {
  node.classList.add('drop-asking');
  const r = await verdict(ctx, moved, onto);
  node.classList.remove('drop-asking');
  if (ctx.drag !== moved) return;
  const legal = r.status === 200;
  node.classList.add(legal ? 'drop-legal' : 'drop-illegal');
  node.querySelector('.verdict').textContent = legal
    ? 'drop to relocate ' + instanceName(moved) + ' here'
    : 'refused: ' + (r.body.error || r.status);
}

async function dropped(ctx, moved, onto) {
  const r = await verdict(ctx, moved, onto);
  if (r.status !== 200) {
    notice('Relocating ' + instanceName(moved) + ' below ' + instanceName(onto) + ' is refused: ' + (r.body.error || r.status));
    return;
  }
  confirmPlan(ctx, { kind: 'relocate', target: instanceName(moved), destination: instanceName(onto) }, r.body);
}

// ------------------------------------------------------------- operations

function modal(...content) {
  const d = document.getElementById('dialog');
  document.getElementById('dialog-body').replaceChildren(...content.flat().filter(Boolean));
  if (!d.open) d.showModal();
  return d;
}

function closeModal() {
  const d = document.getElementById('dialog');
  if (d.open) d.close();
}

function instanceDialog(ctx, i) {
  const others = ctx.view.instances.filter((o) => o.key !== i.key);
  const ops = kinds.filter((k) => !CLUSTER_OPS.includes(k) || k === 'graceful-takeover');
  const s = i.snapshot || {};
  const rows = [
    ['address', i.key], ['role', i.role], ['source', i.source || '—'], ['lag', lag(i.lagMs)],
    ['read only', i.readOnly === null ? '?' : String(i.readOnly)], ['version', s.version ? s.version.raw : '?'],
    ['server id', s.server_id], ['GTID executed', s.gtid ? (s.gtid.executed || s.gtid.binlog_pos || '') : ''],
    ['semi-sync', s.semi_sync ? (s.semi_sync.primary_enabled ? 'source ' : '') + (s.semi_sync.replica_enabled ? 'replica' : '') : ''],
    ['errant', i.errant || '—'], ['downtime', i.downtimed ? 'yes' : 'no'], ['promotion rule', i.promotionRule],
  ];
  if (s.replica) {
    rows.push(['IO thread', s.replica.io_running + (s.replica.last_io_error ? ': ' + s.replica.last_io_error : '')]);
    rows.push(['SQL thread', (s.replica.sql_running ? 'yes' : 'no') + (s.replica.last_sql_error ? ': ' + s.replica.last_sql_error : '')]);
  }
  if (i.kubernetes) rows.push(['pod', (i.kubernetes.phase || '?') + ', ' + i.kubernetes.restarts + ' restarts, node ' + (i.kubernetes.node || '?')]);
  const pick = el('select', { id: 'destination' }, el('option', { value: '' }, '(destination)'),
    others.map((o) => el('option', { value: instanceName(o) }, instanceName(o))));
  const duration = el('input', { id: 'duration', placeholder: 'duration, e.g. 30m', size: 14 });
  modal(
    el('h2', {}, instanceName(i)),
    el('table', { class: 'facts' }, rows.map(([k, val]) => el('tr', {}, el('th', {}, k), el('td', {}, val)))),
    el('h3', {}, 'Operations'),
    el('div', { class: 'row' }, pick, duration),
    el('div', { class: 'ops grid' }, ops.map((k) => el('button', {
      type: 'button',
      dataset: { kind: k },
      onclick: () => {
        const req = { kind: k, target: instanceName(i) };
        if (TAKES_DESTINATION.includes(k) && pick.value) req.destination = pick.value;
        if (NEEDS_DESTINATION.includes(k) && !req.destination) { notice(k + ' needs a destination: pick one'); return; }
        if (k === 'begin-downtime') req.duration = duration.value || '30m';
        operate(ctx, req);
      },
    }, k))),
    el('div', { class: 'row end' }, el('button', { type: 'button', class: 'ghost', onclick: closeModal }, 'Close')));
}

// Every operation is planned first (a dry run) and runs only once the
// plan is confirmed.
async function operate(ctx, req) {
  const r = await api('clusters/' + ctx.path + '/operations', {
    method: 'POST', body: JSON.stringify(Object.assign({}, req, { dryRun: true })),
  });
  if (r.status !== 200) {
    modal(el('h2', {}, req.kind), el('p', { class: 'refused' }, 'Refused: ' + (r.body.error || r.status)),
      el('div', { class: 'row end' }, el('button', { type: 'button', onclick: closeModal }, 'Close')));
    return;
  }
  confirmPlan(ctx, req, r.body);
}

function confirmPlan(ctx, req, answer) {
  const comment = el('input', { id: 'comment', placeholder: 'comment (optional)', size: 40 });
  const what = req.kind + (req.target ? ' ' + req.target : '') + (req.destination ? ' below ' + req.destination : '');
  modal(
    el('h2', {}, 'Confirm: ' + what),
    el('p', {}, answer.message),
    answer.successor ? el('p', { class: 'successor' }, 'Candidate: ', el('b', {}, answer.successor)) : null,
    answer.lostReplicas && answer.lostReplicas.length
      ? el('div', { class: 'lost' }, el('b', {}, 'Replicas lost:'), el('ul', {}, answer.lostReplicas.map((l) => el('li', {}, l))))
      : (['graceful-takeover', 'force-failover', 'force-takeover'].includes(req.kind) ? el('p', {}, 'No replica is lost.') : null),
    answer.steps && answer.steps.length ? el('ol', { class: 'steps' }, answer.steps.map((s) => el('li', {}, s))) : null,
    answer.plan && answer.plan.notes && answer.plan.notes.length
      ? el('ul', { class: 'notes' }, answer.plan.notes.map((n) => el('li', { class: 'muted' }, n))) : null,
    el('div', { class: 'row' }, comment),
    el('div', { class: 'row end' },
      el('button', { type: 'button', class: 'ghost', onclick: closeModal }, 'Cancel'),
      el('button', {
        type: 'button', id: 'confirm', class: 'danger',
        onclick: async (e) => {
          e.target.disabled = true;
          e.target.textContent = 'Running…';
          const body = Object.assign({}, req);
          if (comment.value) body.comment = comment.value;
          const r = await api('clusters/' + ctx.path + '/operations', { method: 'POST', body: JSON.stringify(body) });
          closeModal();
          if (r.status === 200) notice(req.kind + ': ' + r.body.message, r.body.outcome === 'failed' ? 'error' : 'ok');
          else notice(req.kind + ' refused: ' + (r.body.error || r.status) + (r.body.leader ? ' (the leader is ' + r.body.leader + ')' : ''));
        },
      }, NO_PLAN.includes(req.kind) ? 'Do it' : 'Run the plan')));
}

// ----------------------------------------------------------------- history

async function historyPage(main, ns, name) {
  const path = encodeURIComponent(ns) + '/' + encodeURIComponent(name);
  crumbs(el('a', { href: '#/' }, 'Clusters'), el('a', { href: '#/clusters/' + path }, ns + '/' + name),
    el('a', { href: '#/clusters/' + path + '/history' }, 'history'));
  const [rec, fin, aud] = await Promise.all([
    api('clusters/' + path + '/recoveries?pageSize=50'),
    api('clusters/' + path + '/findings?pageSize=100'),
    api('clusters/' + path + '/audit?pageSize=50'),
  ]);
  const failed = (r) => el('p', { class: 'muted' }, r.body.error || String(r.status));
  const recoveries = rec.status !== 200 ? failed(rec) : el('table', { class: 'history', id: 'recoveries' },
    el('tr', {}, ['started', 'kind', 'trigger', 'failed', 'successor', 'outcome', 'acknowledged', ''].map((h) => el('th', {}, h))),
    rec.body.items.map((r) => recoveryRow(path, r, r === lastRecovery(rec.body.items))));
  const findings = fin.status !== 200 ? failed(fin) : el('table', { class: 'history', id: 'findings' },
    el('tr', {}, ['first seen', 'last seen', 'ended', 'code', 'severity', 'instance', 'description'].map((h) => el('th', {}, h))),
    fin.body.items.map((f) => el('tr', { class: 'sev-' + sev(f) },
      el('td', {}, when(f.first_seen_ms)), el('td', {}, when(f.last_seen_ms)), el('td', {}, f.ended_ms ? when(f.ended_ms) : 'ongoing'),
      el('td', {}, f.code), el('td', {}, f.severity), el('td', {}, f.instance), el('td', {}, f.description))));
  const audit = aud.status !== 200 ? failed(aud) : el('table', { class: 'history', id: 'audit' },
    el('tr', {}, ['at', 'action', 'target', 'by', 'through', 'detail'].map((h) => el('th', {}, h))),
    aud.body.items.map((a) => el('tr', {},
      el('td', {}, when(a.at_ms)), el('td', {}, a.action), el('td', {}, a.target || ''), el('td', {}, a.requested_by || ''),
      el('td', {}, a.door), el('td', {}, a.detail || ''))));
  main.replaceChildren(el('h1', {}, ns + '/' + name + ': history'),
    el('h2', {}, 'Recoveries and operations'), recoveries,
    el('h2', {}, 'Findings over time'), findings,
    el('h2', {}, 'Audit'), audit);
  return () => {};
}

// Acknowledging acknowledges the last recovery of a failure: the newest
// record of one of these kinds.
const RECOVERY_KINDS = ['recover-dead-primary', 'recover-dead-intermediate-primary', 'force-failover', 'force-takeover'];

function lastRecovery(items) {
  return items.find((r) => RECOVERY_KINDS.includes(r.kind));
}

function recoveryRow(path, r, ackable) {
  const steps = el('td', { colspan: 8, class: 'steps-cell' });
  const stepsRow = el('tr', { class: 'hidden' }, steps);
  const ack = r.acknowledged_by
    ? r.acknowledged_by + (r.acknowledged_comment ? ': ' + r.acknowledged_comment : '')
    : !ackable ? '' : el('button', {
      type: 'button', class: 'ghost ack',
      onclick: async () => {
        const comment = window.prompt('Acknowledge ' + r.id + ' with a comment:');
        if (comment === null) return;
        const a = await api('clusters/' + path + '/operations', { method: 'POST', body: JSON.stringify({ kind: 'acknowledge', comment }) });
        if (a.status === 200) await route();
        notice(a.status === 200 ? a.body.message : 'acknowledge refused: ' + (a.body.error || a.status), a.status === 200 ? 'ok' : 'error');
      },
    }, 'acknowledge');
  const toggle = el('button', {
    type: 'button', class: 'ghost',
    onclick: async () => {
      if (stepsRow.classList.toggle('hidden')) return;
      const s = await api('clusters/' + path + '/recoveries/' + encodeURIComponent(r.id) + '/steps');
      steps.replaceChildren(s.status !== 200 ? (s.body.error || String(s.status))
        : el('ol', {}, s.body.items.map((x) => el('li', { class: 'outcome-' + x.outcome },
          (x.phase === 'rollback' ? 'rollback: ' : '') + x.description + ' — ' + x.outcome + (x.detail ? ' (' + x.detail + ')' : '') + ', ' + x.duration_ms + ' ms'))));
    },
  }, 'steps');
  const row = el('tr', { class: 'outcome-' + r.outcome },
    el('td', {}, when(r.started_ms)), el('td', {}, r.kind), el('td', {}, r.trigger || ''), el('td', {}, r.failed_instance || ''),
    el('td', {}, r.successor || ''), el('td', {}, r.outcome + (r.outcome_detail ? ': ' + r.outcome_detail : '')), el('td', {}, ack), el('td', {}, toggle));
  const frag = document.createDocumentFragment();
  frag.append(row, stepsRow);
  return frag;
}

// ------------------------------------------------------------------- shell

function showToken() {
  document.getElementById('token-form').classList.remove('hidden');
}

async function leaderLine() {
  const r = await api('leader');
  const l = document.getElementById('leader');
  if (r.status !== 200) { l.textContent = ''; return; }
  l.textContent = r.body.isLeader ? 'this replica leads (epoch ' + r.body.epoch + ')'
    : 'follower' + (r.body.leader ? '; the leader is ' + r.body.leader : '');
}

async function route() {
  leaving();
  leaving = () => {};
  closeModal();
  notice('');
  const main = document.getElementById('main');
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'clusters' && parts.length >= 3) {
    if (parts[3] === 'history') leaving = await historyPage(main, parts[1], parts[2]);
    else leaving = clusterPage(main, parts[1], parts[2]);
  } else {
    leaving = clustersPage(main);
  }
}

async function start() {
  const doc = await api('openapi.json');
  try {
    kinds = doc.body.components.schemas.OperationRequest.properties.kind.enum;
  } catch (e) {
    kinds = CLUSTER_OPS;
  }
  leaderLine();
  route();
}

function tokenForm() {
  const form = document.getElementById('token-form');
  document.getElementById('token-button').addEventListener('click', () => form.classList.toggle('hidden'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem('orca.token', document.getElementById('token').value.trim());
    document.getElementById('token').value = '';
    form.classList.add('hidden');
    notice('');
    start();
  });
  document.getElementById('token-clear').addEventListener('click', () => {
    sessionStorage.removeItem('orca.token');
    form.classList.add('hidden');
  });
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', () => {
  // A #token=... in the address (as `kubectl orca` or a test opens the
  // page) is kept for the tab and taken out of the address.
  const m = location.hash.match(/[#&]token=([^&]+)/);
  if (m) {
    sessionStorage.setItem('orca.token', decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search + '#/');
  }
  tokenForm();
  start();
});
