// The millpond console: renders the cluster view (GET /api/view, then live over /api/events).
// No framework: each update rebuilds the sections from the view with DOM calls (textContent only,
// never HTML from data). Sparklines show each host's read/write rate over the last views.
'use strict';

const HISTORY_VIEWS = 60;
/** host -> [{ rd, wr }] of the last HISTORY_VIEWS views. */
const history = new Map();

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  n = n || 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

const state = (s) => el('span', { class: 'state', 'data-state': s, text: s });

function bar(fraction, title) {
  const f = Math.max(0, Math.min(1, fraction || 0));
  return el('span', { class: 'bar', title }, el('span', { style: `width:${(f * 100).toFixed(1)}%` }));
}

function table(head, rows, rowAttrs) {
  const t = el('table', {}, el('tr', {}, ...head.map((h) => el('th', { text: h }))));
  rows.forEach((cells, i) => t.append(el('tr', rowAttrs ? rowAttrs(i) : {}, ...cells.map((c) => el('td', {}, c)))));
  return t;
}

function sparkline(points) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', `0 0 ${HISTORY_VIEWS} 20`);
  svg.setAttribute('preserveAspectRatio', 'none');
  const max = Math.max(1, ...points.map((p) => Math.max(p.rd, p.wr)));
  for (const key of ['rd', 'wr']) {
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('class', key);
    line.setAttribute('points', points.map((p, i) => `${HISTORY_VIEWS - points.length + i},${(20 - (p[key] / max) * 19).toFixed(1)}`).join(' '));
    svg.append(line);
  }
  return svg;
}

function remember(view) {
  for (const h of view.hosts) {
    const nodes = view.nodes.filter((n) => n.host === h.host);
    const seen = new Set();
    let rd = 0; let wr = 0;
    for (const n of nodes) {
      const key = n.pid ? `p${n.pid}` : `n${n.nodeId}`;
      if (seen.has(key)) continue;
      seen.add(key);
      rd += n.readBytesPerS; wr += n.writeBytesPerS;
    }
    const list = history.get(h.host) || [];
    list.push({ rd, wr });
    if (list.length > HISTORY_VIEWS) list.shift();
    history.set(h.host, list);
  }
}

function fill(id, ...children) {
  const node = $(id);
  node.replaceChildren(...children);
}

function render(payload) {
  const { view, error } = payload;
  $('error').hidden = !error;
  if (error) $('error').textContent = `${error.code}: ${error.message}`;
  if (!view) return;
  remember(view);
  const health = $('health');
  health.dataset.status = view.health.status;
  health.textContent = view.health.status;
  $('updated').textContent = `as of ${new Date(view.atMs).toLocaleTimeString()}`;
  fill('checks', ...(view.health.checks.length
    ? view.health.checks.map((c) => el('li', { 'data-code': c.code, 'data-severity': c.severity }, el('b', { text: c.code }), ` ${c.message}`))
    : [el('li', { text: 'all well' })]));

  const s = view.services;
  fill('services', table(['service', 'address', 'state'], [
    ...s.mgmtd.instances.map((m) => ['mgmtd', m.address, state(m.role)]),
    ...s.meta.map((m) => ['meta', m.address, state(m.up ? 'up' : 'down')]),
    ['storage', `${s.storage.nodesAlive}/${s.storage.nodes} nodes alive`, `${s.storage.targetsServing}/${s.storage.targets} targets serving`],
    ['executors', `${s.executors.live} live`, `${s.executors.running}/${s.executors.slots} slots busy`],
  ]));

  const c = view.capacity;
  fill('capacity',
    el('p', {}, bar(c.capacityBytes ? c.usedBytes / c.capacityBytes : 0, ''), ` ${bytes(c.usedBytes)} used of ${bytes(c.capacityBytes)}; ${bytes(c.usableFreeBytes)} usable at ${c.replicas} replicas`),
    el('p', { id: 'throughput' }, `read ${bytes(view.throughput.readBytesPerS)}/s, write ${bytes(view.throughput.writeBytesPerS)}/s`));

  const hosts = $('hosts');
  hosts.replaceChildren();
  for (const h of view.hosts) {
    hosts.append(el('h3', { 'data-host': h.host }, `${h.host} `, sparkline(history.get(h.host) || []),
      el('span', { class: 'muted', text: ` ${h.heads} heads, ${h.replicas} replicas` })));
    const targets = view.targets.filter((t) => t.host === h.host);
    hosts.append(table(['target', 'node', 'state', 'capacity', 'used / free'], targets.map((t) => [
      String(t.targetId), String(t.nodeId), state(t.state),
      bar(t.capacityBytes ? t.usedBytes / t.capacityBytes : 0, `${bytes(t.usedBytes)} of ${bytes(t.capacityBytes)}`),
      t.freeBytes === undefined || t.freeBytes === null ? 'not reported' : `${bytes(t.usedBytes)} / ${bytes(t.freeBytes)}`,
    ]), (i) => ({ 'data-target-id': targets[i].targetId, 'data-state': targets[i].state, class: 'target' })));
  }

  fill('chains', table(['chain', 'head', 'replicas'], view.chains.map((ch) => [
    `${ch.chainId} v${ch.version}`, ch.head === undefined || ch.head === null ? state('offline') : String(ch.head),
    el('span', {}, ...ch.targets.map((id, i) => el('span', {}, `${i ? ' → ' : ''}${id} `, state(ch.states[i])))),
  ]), (i) => ({ 'data-chain-id': view.chains[i].chainId })));

  const r = view.recovery;
  const rec = [
    ...r.resyncs.map((t) => [`resync target ${t.targetId}`, t.progress === undefined ? state(t.state) : bar(t.progress, ''),
      `${t.state}, chains ${t.chains.join(', ')}${t.listedChunks === undefined ? '' : `; ${t.copiedChunks} chunks copied (${bytes(t.copiedBytes)})`}`]),
    ...r.moves.map((m) => [`move ${m.from} → ${m.to} (${m.reason})`, bar(m.progress, ''), `${m.chainsDone}/${m.chainIds.length} chains, ~${bytes(m.bytes)}`]),
    ...r.drains.map((d) => [`drain node ${d.nodeId}`, bar(d.progress, ''), `${d.moved}/${d.total} replicas moved`]),
  ];
  fill('recovery', rec.length ? table(['operation', 'progress', ''], rec) : el('p', { class: 'muted', text: 'nothing to recover' }));

  fill('executors', view.executors.length ? table(['executor', 'host', 'slots', 'running', 'load'], view.executors.map((e) => [
    e.id, e.host, String(e.slots), String(e.running), e.load1.toFixed(2),
  ])) : el('p', { class: 'muted', text: 'no executors registered' }));

  const jobs = $('jobs');
  jobs.replaceChildren();
  if (!view.jobs.length) jobs.append(el('p', { class: 'muted', text: 'no recent jobs' }));
  for (const j of view.jobs) {
    const box = el('div', { class: 'job', 'data-job-id': j.jobId, 'data-state': j.state });
    const done = j.tasks.filter((t) => t.state === 'done' || t.state === 'reused').length;
    box.append(el('h3', {}, `job ${j.jobId} `, state(j.state), el('span', { class: 'muted', text: ` ${done}/${j.tasksTotal} tasks` })));
    if (j.error) box.append(el('p', { class: 'error', text: j.error }));
    const stages = [...new Set(j.tasks.map((t) => t.stage))];
    box.append(table(['stage', 'progress', 'tasks'], stages.map((stage) => {
      const tasks = j.tasks.filter((t) => t.stage === stage);
      const finished = tasks.filter((t) => t.state === 'done' || t.state === 'reused').length;
      return [stage, el('span', {}, bar(finished / tasks.length, ''), ` ${finished}/${tasks.length}`), el('span', { class: 'tasks' }, ...tasks.map((t) => el('span', {
        class: 'task', 'data-task-key': t.key, 'data-state': t.state, 'data-host': t.host,
        title: `${t.key}: ${t.state}, ${t.attempts} attempt(s)${t.host ? ` on ${t.host} (${t.executor} pid ${t.pid})` : ''}` +
          `${t.readBytes === undefined ? '' : `, read ${bytes(t.readBytes)}, wrote ${bytes(t.writtenBytes ?? 0)}`}`,
      })))];
    })));
    jobs.append(box);
  }
}

async function start() {
  try {
    const res = await fetch('/api/view', { credentials: 'same-origin' });
    render(await res.json());
  } catch (err) {
    render({ error: { code: 'EIO', message: String(err) } });
  }
  const events = new EventSource('/api/events');
  events.addEventListener('view', (e) => render(JSON.parse(e.data)));
  events.onopen = () => { $('live').dataset.live = 'yes'; $('live').textContent = 'live'; };
  events.onerror = () => { $('live').dataset.live = 'no'; $('live').textContent = 'reconnecting…'; };
}

start();
