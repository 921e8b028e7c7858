// The amqpbroker management console: one page, views picked by the URL fragment
// (#/queues, #/queues/%2F/jobs, ...), every figure read from the management HTTP API
// with the logged-in user's credentials (kept in sessionStorage, sent as Basic auth).
// Each view renders its forms once and refreshes only its live regions, so a refresh
// never loses what the user is typing.
'use strict';

(() => {
  const AUTH_KEY = 'amqpbroker.auth';
  const REFRESH_KEY = 'amqpbroker.refresh';
  const VHOST_KEY = 'amqpbroker.vhost';

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];
  const enc = encodeURIComponent;

  // --- HTML with every interpolated value escaped --------------------------------------

  class Html {
    constructor(text) { this.text = text; }
    toString() { return this.text; }
  }
  const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  const esc = (value) => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  const part = (value) => {
    if (value instanceof Html) return value.text;
    if (Array.isArray(value)) return value.map(part).join('');
    if (value === null || value === undefined || value === false) return '';
    return esc(value);
  };
  const html = (strings, ...values) =>
    new Html(strings.reduce((out, s, i) => out + part(values[i - 1]) + s));

  // --- formatting ---------------------------------------------------------------------------

  const num = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '');
  const rate = (details) => {
    const r = details && typeof details.rate === 'number' ? details.rate : 0;
    return `${r.toLocaleString('en-US', { maximumFractionDigits: 1 })}/s`;
  };
  const bytes = (n) => {
    if (typeof n !== 'number') return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${i ? n.toFixed(1) : n} ${units[i]}`;
  };
  const duration = (ms) => {
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    return m ? `${m}m ${s}s` : `${s}s`;
  };
  const json = (value) => JSON.stringify(value);
  const args = (obj) => {
    const entries = Object.entries(obj || {});
    if (!entries.length) return '';
    return html`<span class="args">${entries.map(([k, v]) =>
      html`<span><b>${k}</b>: ${typeof v === 'string' ? v : json(v)}</span>`)}</span>`;
  };
  const features = (o) => html`${o.durable ? html`<abbr title="durable">D</abbr>` : ''}
    ${o.auto_delete ? html`<abbr title="auto-delete">AD</abbr>` : ''}
    ${o.exclusive ? html`<abbr title="exclusive">Excl</abbr>` : ''}
    ${o.internal ? html`<abbr title="internal">I</abbr>` : ''}
    ${Object.keys(o.arguments || {}).filter((k) => ARG_SHORT[k] !== null).map((k) => html`<abbr class="arg" title="${k}: ${json(o.arguments[k])}">${ARG_SHORT[k] || 'Args'}</abbr>`)}
    ${o.policy ? html`<span class="policy">${o.policy}</span>` : ''}`;
  const ARG_SHORT = {
    'x-message-ttl': 'TTL', 'x-expires': 'Exp', 'x-max-length': 'Lim', 'x-max-length-bytes': 'Lim B',
    'x-dead-letter-exchange': 'DLX', 'x-dead-letter-routing-key': 'DLK', 'x-max-priority': 'Pri',
    'x-queue-type': null, 'x-single-active-consumer': 'SAC', 'x-overflow': 'Ovfl',
    'x-queue-mode': 'Mode', 'alternate-exchange': 'AE', 'x-delivery-limit': 'DL',
  };
  const exchangeLabel = (name) => (name === '' ? '(AMQP default)' : name);
  const exchangePath = (name) => (name === '' ? 'amq.default' : name);

  // "key = value" lines to an object: values that parse as JSON keep their type
  // (numbers, booleans, objects), the others are strings.
  const parseLines = (text) => {
    const found = {};
    for (const line of String(text || '').split('\n')) {
      if (!line.trim()) continue;
      const at = line.indexOf('=');
      if (at < 1) throw new Error(`"${line.trim()}" is not key = value`);
      const key = line.slice(0, at).trim();
      const raw = line.slice(at + 1).trim();
      try { found[key] = JSON.parse(raw); } catch { found[key] = raw; }
    }
    return found;
  };

  // --- the API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, reason) { super(reason); this.status = status; }
  }

  const basic = (user, password) =>
    btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${password}`)));

  const session = {
    auth: sessionStorage.getItem(AUTH_KEY), user: null, overview: null, vhosts: [], users: [],
  };

  async function api(path, { method = 'GET', body, headers = {}, auth = session.auth } = {}) {
    const init = { method, headers: { Authorization: `Basic ${auth}`, ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    const response = await fetch(`api${path}`, init);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) {
      const reason = (data && (data.reason || data.error)) || response.statusText || 'failed';
      if (response.status === 401 && auth === session.auth && reason === 'Login failed') {
        logout('Login failed: the credentials are no longer valid');
      }
      throw new ApiError(response.status, reason);
    }
    return data;
  }

  const listPath = (kind, vhost) => `/${kind}${vhost ? `/${enc(vhost)}` : ''}`;
  const currentVhost = () => sessionStorage.getItem(VHOST_KEY) || '';
  const isAdmin = () => (session.user?.tags || []).includes('administrator');
  const isMonitor = () => isAdmin() || (session.user?.tags || []).includes('monitoring');

  // --- flash messages and form results ----------------------------------------------------

  let flashTimer = null;
  function flash(text, ok = true) {
    const el = $('#flash');
    el.className = ok ? 'ok' : 'error';
    el.textContent = text;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { el.textContent = ''; el.className = ''; }, 6000);
  }

  function report(form, text, ok = true) {
    let el = $('.result', form);
    if (!el) {
      el = document.createElement('p');
      el.className = 'result';
      form.append(el);
    }
    el.classList.toggle('error', !ok);
    el.classList.toggle('ok', ok);
    el.textContent = text;
  }

  function values(form) {
    const found = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.type === 'checkbox') found[el.name] = el.checked;
      else if (el.type === 'file') found[el.name] = el.files;
      else if (el.type === 'radio') { if (el.checked) found[el.name] = el.value; } else found[el.name] = el.value;
    }
    return found;
  }

  // --- views --------------------------------------------------------------------------------

  const view = { gen: 0, page: null, params: [], busy: false, timer: null };
  const lists = {}; // the filter, page and sort of each list, kept while the session lasts

  function listState(key) {
    lists[key] = lists[key] || { page: 1, size: 100, name: '', regex: false, sort: '', reverse: false };
    return lists[key];
  }

  // Replace a live region's content, only when it changed (keeps hover, focus, selection).
  function live(selector, content) {
    const el = $(selector, $('#main'));
    if (!el) return;
    const text = part(content);
    if (el.dataset.shown === text) return;
    el.innerHTML = text;
    el.dataset.shown = text;
  }

  async function refresh() {
    if (!view.page || view.busy) return;
    const gen = view.gen;
    view.busy = true;
    try {
      await refreshCommon();
      if (gen !== view.gen) return;
      await view.page.refresh(...view.params);
      if (gen === view.gen) {
        live('.page-error', '');
        $('#main').dataset.refreshed = 'yes'; // the view shows the API's figures
      }
    } catch (e) {
      if (gen === view.gen && !(e instanceof ApiError && e.status === 401 && !session.auth)) {
        live('.page-error', html`<p class="error">${e.message}</p>`);
      }
    } finally {
      view.busy = false;
    }
  }

  // What several views need: the vhosts (header filter, vhost choosers) and users.
  async function refreshCommon() {
    const vhosts = (await api('/vhosts?columns=name')).map((v) => v.name);
    if (json(vhosts) !== json(session.vhosts)) {
      session.vhosts = vhosts;
      fillSelect($('#vhost-filter'), ['', ...vhosts], currentVhost(), (v) => v || 'All');
    }
    for (const select of $$('select[data-vhosts]')) {
      const chosen = select.value || currentVhost() || vhosts[0] || '/';
      fillSelect(select, vhosts, chosen);
    }
    const userSelects = $$('select[data-users]');
    if (userSelects.length) {
      session.users = (await api('/users?columns=name')).map((u) => u.name);
      for (const select of userSelects) fillSelect(select, session.users, select.value);
    }
  }

  function fillSelect(select, options, chosen, label = (v) => v) {
    const wanted = json(options);
    if (select.dataset.options !== wanted) {
      select.innerHTML = part(options.map((o) => html`<option value="${o}">${label(o)}</option>`));
      select.dataset.options = wanted;
    }
    if (options.includes(chosen)) select.value = chosen;
  }

  function schedule() {
    clearInterval(view.timer);
    const seconds = Number(sessionStorage.getItem(REFRESH_KEY) || '5');
    if (seconds > 0) {
      view.timer = setInterval(() => { if (!document.hidden) refresh(); }, seconds * 1000);
    }
  }

  const ROUTES = [
    [/^#?\/?$/, 'overview'],
    [/^#\/connections$/, 'connections'],
    [/^#\/connections\/([^/]+)$/, 'connection'],
    [/^#\/channels$/, 'channels'],
    [/^#\/exchanges$/, 'exchanges'],
    [/^#\/exchanges\/([^/]+)\/([^/]+)$/, 'exchange'],
    [/^#\/queues$/, 'queues'],
    [/^#\/queues\/([^/]+)\/([^/]+)$/, 'queue'],
    [/^#\/admin(?:\/(users|vhosts|permissions|policies))?$/, 'admin'],
  ];

  function navigate() {
    let name = null;
    let params = [];
    for (const [pattern, page] of ROUTES) {
      const match = location.hash.match(pattern);
      if (match) {
        name = page;
        params = match.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p)));
        break;
      }
    }
    view.gen += 1;
    view.busy = false;
    const main = $('#main');
    main.dataset.view = location.hash || '#/';
    delete main.dataset.refreshed;
    if (!name) {
      view.page = null;
      main.innerHTML = part(html`<h1>Not found</h1><p>There is no page at ${location.hash}.
        <a href="#/">Back to the overview</a></p>`);
      return;
    }
    const page = PAGES[name];
    view.page = page;
    view.params = params;
    for (const tab of $$('#tabs a')) tab.classList.toggle('active', tab.dataset.tab === page.tab);
    main.innerHTML = part(html`<div class="page-error" role="alert"></div>${page.shell(...params)}`);
    document.title = `${page.title(...params)} - amqpbroker`;
    refresh();
  }

  // A list view's filter/paging bar (in the shell) and its pager (live).
  const filterBar = (key, what) => {
    const s = listState(key);
    return html`<form class="filter" data-filter="${key}" onsubmit="return false">
      <label>Filter: <input name="name" value="${s.name}" placeholder="name" autocomplete="off"></label>
      <label><input type="checkbox" name="regex" ${s.regex ? html`checked` : ''}> Regex</label>
      <label>Page size <select name="size">${[10, 25, 50, 100, 500].map((n) =>
        html`<option value="${n}" ${n === s.size ? html`selected` : ''}>${n}</option>`)}</select></label>
      <span class="pager" aria-label="${what} pages"></span>
    </form>`;
  };

  async function fetchPage(key, path, columns) {
    const s = listState(key);
    const query = new URLSearchParams({ page: s.page, page_size: s.size });
    if (s.name) query.set('name', s.name);
    if (s.regex) query.set('use_regex', 'true');
    if (s.sort) { query.set('sort', s.sort); query.set('sort_reverse', String(s.reverse)); }
    if (columns) query.set('columns', columns);
    try {
      return await api(`${path}?${query}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 400 && /out of range/i.test(e.message) && s.page > 1) {
        s.page = 1;
        return fetchPage(key, path, columns);
      }
      throw e;
    }
  }

  function pager(key, data, what) {
    const pages = Array.from({ length: data.page_count }, (_, i) => i + 1);
    live(`form[data-filter="${key}"] .pager`, html`
      Page <select name="page" data-pager="${key}">${pages.map((p) =>
        html`<option value="${p}" ${p === data.page ? html`selected` : ''}>${p}</option>`)}</select>
      of ${data.page_count} · <span class="count">${num(data.filtered_count)}</span> ${what}
      ${data.filtered_count !== data.total_count ? html` (of ${num(data.total_count)})` : ''}`);
  }

  const sortable = (key, field, label) => {
    const s = listState(key);
    const mark = s.sort === field ? (s.reverse ? ' ▼' : ' ▲') : '';
    return html`<th><button type="button" class="sort" data-action="sort" data-list="${key}" data-field="${field}">${label}${mark}</button></th>`;
  };

  const empty = (cols, text) => html`<tr><td colspan="${cols}" class="empty">${text}</td></tr>`;

  const vhostField = (label = 'Virtual host') =>
    html`<label>${label} <select name="vhost" data-vhosts required>${session.vhosts.map((v) =>
      html`<option value="${v}" ${v === (currentVhost() || '/') ? html`selected` : ''}>${v}</option>`)}</select></label>`;

  const vhostColumn = () => !currentVhost() && session.vhosts.length > 1;

  // --- charts -------------------------------------------------------------------------------

  const COLORS = ['#ed8b00', '#1f77b4', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2'];

  // Series from `*_details.samples` (newest first): lengths as they are, counters as the
  // rate between consecutive samples.
  function series(details, asRate) {
    const samples = (details && details.samples) || [];
    const points = [];
    for (let i = 0; i < samples.length - (asRate ? 1 : 0); i += 1) {
      const s = samples[i];
      if (!asRate) { points.push([s.timestamp, s.sample]); continue; }
      const older = samples[i + 1];
      const dt = (s.timestamp - older.timestamp) / 1000;
      points.push([s.timestamp, dt > 0 ? Math.max(0, (s.sample - older.sample) / dt) : 0]);
    }
    return points.reverse();
  }

  function chartBlock(id, title) {
    return html`<div class="chart-block"><h3>${title}</h3>
      <div class="chart-wrap"><canvas id="${id}" width="640" height="180" role="img" aria-label="${title}"></canvas>
      <table class="legend" id="${id}-legend"></table></div></div>`;
  }

  // lines: [{label, points: [[ms, value]...], now: text}]
  function drawChart(id, lines, ageSeconds, unit) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 640;
    const height = canvas.clientHeight || 180;
    if (canvas.width !== Math.round(width * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const left = 56, right = 8, top = 8, bottom = 22;
    const w = width - left - right, h = height - top - bottom;
    const stamps = lines.flatMap((l) => l.points.map((p) => p[0]));
    const newest = stamps.length ? Math.max(...stamps) : Date.now();
    const oldest = newest - ageSeconds * 1000;
    let max = Math.max(0, ...lines.flatMap((l) => l.points.map((p) => p[1])));
    max = niceCeiling(max);
    g.font = '11px system-ui, sans-serif';
    g.strokeStyle = '#e3e3e3';
    g.fillStyle = '#666';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i += 1) {
      const y = top + h - (h * i) / 4;
      g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(left + w, y + 0.5); g.stroke();
      g.fillText(`${formatAxis((max * i) / 4)}${unit}`, left - 6, y);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const ticks = 6;
    for (let i = 0; i <= ticks; i += 1) {
      const x = left + (w * i) / ticks;
      const ago = Math.round((ageSeconds * (ticks - i)) / ticks);
      g.textAlign = i === 0 ? 'left' : i === ticks ? 'right' : 'center';
      g.fillText(ago ? `-${ago}s` : 'now', x, top + h + 6);
    }
    const x = (t) => left + ((t - oldest) / (newest - oldest)) * w;
    const y = (v) => top + h - (max ? (v / max) * h : 0);
    lines.forEach((line, i) => {
      const points = line.points.filter((p) => p[0] >= oldest);
      if (!points.length) return;
      g.strokeStyle = COLORS[i % COLORS.length];
      g.lineWidth = 2;
      g.beginPath();
      points.forEach(([t, v], j) => (j ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
      g.stroke();
    });
    if (!lines.some((l) => l.points.length > 1)) {
      g.fillStyle = '#999';
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.fillText('Collecting samples…', left + w / 2, top + h / 2);
    }
    const legend = document.getElementById(`${id}-legend`);
    if (legend) {
      legend.innerHTML = part(lines.map((line, i) => html`<tr>
        <td><span class="swatch" style="background:${COLORS[i % COLORS.length]}"></span>${line.label}</td>
        <td class="num" data-series="${line.label}">${line.now}</td></tr>`));
    }
  }

  // The top of a y axis with four gridlines at round values.
  function niceCeiling(v) {
    if (v <= 0) return 4;
    const quarter = v / 4;
    const power = 10 ** Math.floor(Math.log10(quarter));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= quarter) return 4 * step * power;
    return 40 * power;
  }
  const formatAxis = (v) => (v >= 1000 ? `${(v / 1000).toLocaleString('en-US', { maximumFractionDigits: 1 })}k`
    : v.toLocaleString('en-US', { maximumFractionDigits: 1 }));

  const chartAge = () => Number(sessionStorage.getItem('amqpbroker.chart-age') || '60');
  const statsQuery = () => {
    const age = chartAge();
    const incr = 5;
    return `lengths_age=${age}&lengths_incr=${incr}&msg_rates_age=${age}&msg_rates_incr=${incr}`;
  };

  function queuedChart(id, source) {
    drawChart(id, [
      ['Ready', 'messages_ready'], ['Unacked', 'messages_unacknowledged'], ['Total', 'messages'],
    ].map(([label, key]) => ({
      label, points: series(source[`${key}_details`], false), now: num(source[key] ?? 0),
    })), chartAge(), '');
  }

  function ratesChart(id, stats, names) {
    drawChart(id, names.map(([label, key]) => ({
      label, points: series(stats[`${key}_details`], true), now: rate(stats[`${key}_details`]),
    })), chartAge(), '/s');
  }

  const NODE_RATES = [
    ['Publish', 'publish'], ['Publisher confirm', 'confirm'], ['Deliver (manual ack)', 'deliver'],
    ['Deliver (auto ack)', 'deliver_no_ack'], ['Consumer ack', 'ack'], ['Redelivered', 'redeliver'],
    ['Get', 'get'], ['Unroutable (return)', 'return_unroutable'],
  ];

  const chartRange = () => html`<label class="range">Charts show the last
    <select id="chart-age">${[[60, 'minute'], [600, '10 minutes']].map(([v, label]) =>
      html`<option value="${v}" ${v === chartAge() ? html`selected` : ''}>${label}</option>`)}</select></label>`;

  // --- overview ------------------------------------------------------------------------------

  const overview = {
    tab: 'overview',
    title: () => 'Overview',
    shell: () => html`<h1>Overview</h1>${chartRange()}
      <section><h2>Totals</h2>
        <div class="charts">${chartBlock('queued-chart', 'Queued messages')}${chartBlock('rates-chart', 'Message rates')}</div>
        <div class="totals" id="totals"></div>
      </section>
      <section><h2>Nodes</h2><div id="node"></div></section>
      <section><h2>Churn statistics</h2><div id="churn"></div></section>
      <section><h2>Ports and contexts</h2><div id="listeners"></div></section>
      <section class="definitions"><h2>Export definitions</h2>
        <form data-form="export-definitions">
          <label>Filename <input name="filename" value="${definitionsFilename()}" required></label>
          <button type="submit">Download broker definitions</button>
        </form>
        <h2>Import definitions</h2>
        <form data-form="import-definitions">
          <label>Definitions file <input type="file" name="file" accept=".json,application/json" required></label>
          <button type="submit">Upload broker definitions</button>
        </form>
      </section>`,
    async refresh() {
      const data = await api(`/overview?${statsQuery()}`);
      session.overview = data;
      const totals = data.object_totals || {};
      const queued = data.queue_totals || {};
      live('#totals', html`<dl class="cards">
        ${[['Connections', totals.connections, '#/connections'], ['Channels', totals.channels, '#/channels'],
           ['Exchanges', totals.exchanges, '#/exchanges'], ['Queues', totals.queues, '#/queues'],
           ['Consumers', totals.consumers, '#/queues']].map(([label, n, href]) =>
          html`<div class="card" data-total="${label.toLowerCase()}"><dt><a href="${href}">${label}</a></dt><dd>${num(n)}</dd></div>`)}
        ${[['Ready', 'messages_ready'], ['Unacked', 'messages_unacknowledged'], ['Total messages', 'messages']].map(([label, key]) =>
          html`<div class="card messages" data-total="${key}"><dt>${label}</dt><dd>${num(queued[key] || 0)}</dd></div>`)}
      </dl>`);
      queuedChart('queued-chart', queued);
      ratesChart('rates-chart', data.message_stats || {}, NODE_RATES);
      const churn = data.churn_rates || {};
      live('#churn', html`<table class="list"><thead><tr><th></th><th>Connections</th><th>Channels</th><th>Queues</th></tr></thead>
        <tbody><tr><th>Created</th><td class="num">${rate(churn.connection_created_details)}</td>
          <td class="num">${rate(churn.channel_created_details)}</td><td class="num">${rate(churn.queue_declared_details)}</td></tr>
        <tr><th>Closed / deleted</th><td class="num">${rate(churn.connection_closed_details)}</td>
          <td class="num">${rate(churn.channel_closed_details)}</td><td class="num">${rate(churn.queue_deleted_details)}</td></tr></tbody></table>`);
      live('#listeners', html`<table class="list"><thead><tr><th>Protocol</th><th>Bound to</th><th>Port</th></tr></thead>
        <tbody>${(data.listeners || []).map((l) => html`<tr><td>${l.protocol}</td><td>${l.ip_address}</td><td>${l.port}</td></tr>`)}
        <tr><td>http (management)</td><td>${location.hostname}</td><td>${location.port || (location.protocol === 'https:' ? 443 : 80)}</td></tr></tbody></table>`);
      await refreshNode();
    },
  };

  async function refreshNode() {
    if (!isMonitor()) {
      live('#node', html`<p class="muted">Node details need the monitoring or administrator tag.</p>`);
      return;
    }
    const [nodes, health] = await Promise.all([
      api('/nodes'),
      api('/health/checks/alarms').then(() => ({ status: 'ok' }), (e) => ({ status: 'failed', reason: e.message })),
    ]);
    const meter = (used, total, alarm, text) => {
      const share = total ? Math.min(100, (100 * used) / total) : 0;
      return html`<div class="meter ${alarm ? 'alarm' : ''}" title="${text}">
        <span style="width:${share.toFixed(1)}%"></span></div><small>${text}</small>`;
    };
    live('#node', html`<table class="list nodes"><thead><tr><th>Name</th><th>Health</th><th>Memory</th>
        <th>Disk space</th><th>File descriptors</th><th>Socket descriptors</th><th>Tasks</th><th>Uptime</th><th>Info</th></tr></thead>
      <tbody>${nodes.map((n) => html`<tr>
        <td>${n.name}</td>
        <td class="health ${health.status === 'ok' ? 'ok' : 'error'}">${health.status === 'ok' ? 'running, no alarms' : health.reason}</td>
        <td>${meter(n.mem_used, n.mem_limit, n.mem_alarm, `${bytes(n.mem_used)} of ${bytes(n.mem_limit)} high watermark`)}</td>
        <td>${meter(n.disk_free_limit, n.disk_free || 1, n.disk_free_alarm, `${bytes(n.disk_free)} free, low watermark ${bytes(n.disk_free_limit)}`)}</td>
        <td>${meter(n.fd_used, n.fd_total, false, `${num(n.fd_used)} of ${num(n.fd_total)}`)}</td>
        <td>${meter(n.sockets_used, n.sockets_total, false, `${num(n.sockets_used)} of ${num(n.sockets_total)}`)}</td>
        <td class="num">${num(n.proc_used)}</td>
        <td>${duration(n.uptime)}</td>
        <td><small>${n.processors} cores · ${n.rates_mode} rates · pid ${n.os_pid}</small></td></tr>`)}</tbody></table>`);
  }

  function definitionsFilename() {
    const day = new Date().toISOString().slice(0, 10);
    return `amqpbroker_${location.hostname || 'localhost'}_${day}.json`;
  }

  function download(filename, text) {
    const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = filename;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // --- connections and channels --------------------------------------------------------------

  const connections = {
    tab: 'connections',
    title: () => 'Connections',
    shell: () => html`<h1>Connections</h1>${filterBar('connections', 'connections')}
      <table class="list" id="connections"><thead></thead><tbody></tbody></table>`,
    async refresh() {
      const data = await fetchPage('connections', listPath('connections', currentVhost()));
      pager('connections', data, 'connections');
      const showVhost = vhostColumn();
      live('#connections thead', html`<tr>${showVhost ? html`<th>Virtual host</th>` : ''}
        ${sortable('connections', 'name', 'Name')}${sortable('connections', 'user', 'User name')}<th>State</th>
        <th>Client</th><th>Protocol</th>${sortable('connections', 'channels', 'Channels')}<th>From client</th><th>To client</th><th></th></tr>`);
      live('#connections tbody', data.items.length ? data.items.map((c) => html`<tr data-name="${c.name}">
        ${showVhost ? html`<td>${c.vhost}</td>` : ''}
        <td><a href="#/connections/${enc(c.name)}">${c.name}</a>${c.user_provided_name ? html`<br><small>${c.user_provided_name}</small>` : ''}</td>
        <td>${c.user}</td><td><span class="state">${c.state}</span></td>
        <td>${clientName(c.client_properties)}</td><td>${c.protocol}</td>
        <td class="num">${c.channels}</td><td class="num">${bytes(c.recv_oct_details?.rate || 0)}/s</td>
        <td class="num">${bytes(c.send_oct_details?.rate || 0)}/s</td>
        <td><button type="button" class="danger small" data-action="close-connection" data-name="${c.name}">Close</button></td></tr>`)
        : empty(10, 'No connections'));
    },
  };

  const clientName = (props) => {
    if (!props || typeof props !== 'object') return '';
    return [props.product, props.version].filter(Boolean).join(' ');
  };

  const connection = {
    tab: 'connections',
    title: (name) => `Connection ${name}`,
    shell: (name) => html`<h1>Connection <b>${name}</b></h1>
      <section><h2>Overview</h2><div id="connection-info"></div></section>
      <section><h2>Channels</h2><table class="list" id="connection-channels"></table></section>
      <section><h2>Client properties</h2><div id="client-properties"></div></section>
      <section><h2>Close this connection</h2>
        <form data-form="close-connection" data-name="${name}">
          <label>Reason <input name="reason" value="Closed via management plugin"></label>
          <button type="submit" class="danger">Force Close</button>
        </form></section>`,
    async refresh(name) {
      let c;
      try {
        c = await api(`/connections/${enc(name)}`);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          live('#connection-info', html`<p class="muted">This connection is closed. <a href="#/connections">All connections</a></p>`);
          live('#connection-channels', '');
          return;
        }
        throw e;
      }
      const channels = await api(`/connections/${enc(name)}/channels`);
      live('#connection-info', html`<dl class="facts">
        <dt>User</dt><dd>${c.user}</dd><dt>Virtual host</dt><dd>${c.vhost}</dd>
        <dt>State</dt><dd>${c.state}</dd><dt>Protocol</dt><dd>${c.protocol}</dd>
        <dt>Authentication</dt><dd>${c.auth_mechanism}</dd><dt>Heartbeat</dt><dd>${c.timeout}s</dd>
        <dt>Frame max</dt><dd>${num(c.frame_max)} bytes</dd><dt>Channel limit</dt><dd>${num(c.channel_max)}</dd>
        <dt>Received</dt><dd>${bytes(c.recv_oct)} (${bytes(c.recv_oct_details?.rate || 0)}/s)</dd>
        <dt>Sent</dt><dd>${bytes(c.send_oct)} (${bytes(c.send_oct_details?.rate || 0)}/s)</dd></dl>`);
      live('#connection-channels', channelTable(channels, false));
      live('#client-properties', html`<pre>${JSON.stringify(c.client_properties, null, 2)}</pre>`);
    },
  };

  function channelTable(items, showConnection) {
    return html`<thead><tr><th>Channel</th>${showConnection ? html`<th>Virtual host</th>` : ''}<th>User name</th><th>Mode</th>
      <th>State</th><th>Consumers</th><th>Prefetch</th><th>Unacked</th><th>Publish</th><th>Deliver / get</th><th>Ack</th></tr></thead>
      <tbody>${items.length ? items.map((ch) => html`<tr data-name="${ch.name}">
        <td>${showConnection ? html`<a href="#/connections/${enc(ch.connection_details.name)}">${ch.name}</a>` : ch.number}</td>
        ${showConnection ? html`<td>${ch.vhost}</td>` : ''}
        <td>${ch.user}</td><td>${ch.confirm ? html`<abbr title="confirm">C</abbr>` : ''}${ch.transactional ? html`<abbr title="transactional">T</abbr>` : ''}</td>
        <td>${ch.state}</td><td class="num">${ch.consumer_count}</td><td class="num">${ch.prefetch_count || ch.global_prefetch_count || ''}</td>
        <td class="num">${num(ch.messages_unacknowledged)}</td>
        <td class="num">${rate(ch.message_stats?.publish_details)}</td>
        <td class="num">${rate(ch.message_stats?.deliver_get_details)}</td>
        <td class="num">${rate(ch.message_stats?.ack_details)}</td></tr>`) : empty(11, 'No channels')}</tbody>`;
  }

  const channels = {
    tab: 'channels',
    title: () => 'Channels',
    shell: () => html`<h1>Channels</h1>${filterBar('channels', 'channels')}<table class="list" id="channels"></table>`,
    async refresh() {
      const data = await fetchPage('channels', listPath('channels', currentVhost()));
      pager('channels', data, 'channels');
      live('#channels', channelTable(data.items, true));
    },
  };

  // --- exchanges ---------------------------------------------------------------------------

  const exchangeTypes = () => (session.overview?.exchange_types || []).map((t) => t.name).concat(
    session.overview?.exchange_types?.length ? [] : ['direct', 'fanout', 'headers', 'topic']);

  const argsHelp = html`<small class="muted">One per line: <code>key = value</code>; numbers, booleans and JSON keep their type.</small>`;

  const exchanges = {
    tab: 'exchanges',
    title: () => 'Exchanges',
    shell: () => html`<h1>Exchanges</h1>${filterBar('exchanges', 'exchanges')}
      <table class="list" id="exchanges"><thead></thead><tbody></tbody></table>
      <section><h2>Add a new exchange</h2>
        <form data-form="add-exchange" class="grid">
          ${vhostField()}
          <label>Name <input name="name" required autocomplete="off"></label>
          <label>Type <select name="type">${exchangeTypes().map((t) => html`<option value="${t}">${t}</option>`)}</select></label>
          <label>Durability <select name="durable"><option value="true">Durable</option><option value="false">Transient</option></select></label>
          <label>Auto delete <select name="auto_delete"><option value="false">No</option><option value="true">Yes</option></select></label>
          <label>Internal <select name="internal"><option value="false">No</option><option value="true">Yes</option></select></label>
          <label class="wide">Arguments <textarea name="arguments" rows="2" placeholder="alternate-exchange = unrouted"></textarea>${argsHelp}</label>
          <div><button type="submit">Add exchange</button></div>
        </form></section>`,
    async refresh() {
      const data = await fetchPage('exchanges', listPath('exchanges', currentVhost()));
      pager('exchanges', data, 'exchanges');
      const showVhost = vhostColumn();
      live('#exchanges thead', html`<tr>${showVhost ? html`<th>Virtual host</th>` : ''}${sortable('exchanges', 'name', 'Name')}
        ${sortable('exchanges', 'type', 'Type')}<th>Features</th><th>Message rate in</th><th>Message rate out</th></tr>`);
      live('#exchanges tbody', data.items.length ? data.items.map((x) => html`<tr data-name="${x.name}">
        ${showVhost ? html`<td>${x.vhost}</td>` : ''}
        <td><a href="#/exchanges/${enc(x.vhost)}/${enc(exchangePath(x.name))}">${exchangeLabel(x.name)}</a></td>
        <td>${x.type}</td><td class="features">${features(x)}</td>
        <td class="num">${rate(x.message_stats?.publish_in_details)}</td>
        <td class="num">${rate(x.message_stats?.publish_out_details)}</td></tr>`) : empty(6, 'No exchanges'));
    },
  };

  const publishForm = (kind, vhost, target, routingKey) => html`
    <form data-form="publish" data-vhost="${vhost}" data-exchange="${target}" class="grid publish">
      ${routingKey === null ? html`<label>Routing key <input name="routing_key" autocomplete="off"></label>`
        : html`<input type="hidden" name="routing_key" value="${routingKey}">
          <p class="wide muted">The message goes through the default exchange with routing key <b>${routingKey}</b>,
          straight to this ${kind}.</p>`}
      <label>Delivery mode <select name="delivery_mode"><option value="1">1 - Non-persistent</option>
        <option value="2">2 - Persistent</option></select></label>
      <label class="wide">Headers <textarea name="headers" rows="2" placeholder="x-origin = console"></textarea></label>
      <label class="wide">Properties <textarea name="properties" rows="2" placeholder="content_type = text/plain&#10;message_id = 42"></textarea></label>
      <label class="wide">Payload <textarea name="payload" rows="4"></textarea></label>
      <label>Payload encoding <select name="payload_encoding"><option value="string">String (default)</option>
        <option value="base64">Base64</option></select></label>
      <div><button type="submit">Publish message</button></div>
    </form>`;

  const bindingForm = (vhost, fixed, fixedName) => html`
    <form data-form="add-binding" data-vhost="${vhost}" data-fixed="${fixed}" data-name="${fixedName}" class="grid">
      ${fixed === 'source'
        ? html`<label>To <select name="destination_type"><option value="q">Queue</option><option value="e">Exchange</option></select></label>
          <label>Name <input name="other" required autocomplete="off"></label>`
        : html`<label>From exchange <input name="other" required autocomplete="off"></label>`}
      <label>Routing key <input name="routing_key" autocomplete="off"></label>
      <label class="wide">Arguments <textarea name="arguments" rows="2" placeholder="x-match = all"></textarea></label>
      <div><button type="submit">Bind</button></div>
    </form>`;

  const bindingRows = (items, side, cols) => (items.length ? items.map((b) => html`<tr>
      <td>${side === 'source' ? html`<a href="#/exchanges/${enc(b.vhost)}/${enc(exchangePath(b.source))}">${exchangeLabel(b.source)}</a>`
        : b.destination_type === 'queue' ? html`<a href="#/queues/${enc(b.vhost)}/${enc(b.destination)}">${b.destination}</a> <small>(queue)</small>`
        : html`<a href="#/exchanges/${enc(b.vhost)}/${enc(b.destination)}">${b.destination}</a> <small>(exchange)</small>`}</td>
      <td>${b.routing_key}</td><td>${args(b.arguments)}</td>
      <td>${b.source === '' ? html`<small class="muted">(implicit)</small>` : html`<button type="button" class="small"
        data-action="unbind" data-vhost="${b.vhost}" data-source="${b.source}" data-kind="${b.destination_type === 'queue' ? 'q' : 'e'}"
        data-destination="${b.destination}" data-props="${b.properties_key}">Unbind</button>`}</td></tr>`)
    : empty(cols, 'No bindings'));

  const exchange = {
    tab: 'exchanges',
    title: (vhost, name) => `Exchange ${exchangeLabel(name === 'amq.default' ? '' : name)}`,
    shell: (vhost, path) => {
      const name = path === 'amq.default' ? '' : path;
      return html`<h1>Exchange <b>${exchangeLabel(name)}</b> <small>in virtual host ${vhost}</small></h1>
      <section><h2>Overview</h2><div id="exchange-info"></div>${chartBlock('exchange-rates', 'Message rates')}</section>
      <section><h2>Bindings</h2>
        <h3>From this exchange</h3><table class="list"><thead><tr><th>To</th><th>Routing key</th><th>Arguments</th><th></th></tr></thead>
          <tbody id="bindings-source"></tbody></table>
        ${name ? html`<h3>To this exchange</h3><table class="list"><thead><tr><th>From</th><th>Routing key</th><th>Arguments</th><th></th></tr></thead>
          <tbody id="bindings-destination"></tbody></table>
        <h3>Add binding from this exchange</h3>${bindingForm(vhost, 'source', name)}` : ''}
      </section>
      <section><h2>Publish message</h2>${publishForm('exchange', vhost, exchangePath(name), null)}</section>
      ${name ? html`<section><h2>Delete this exchange</h2>
        <form data-form="delete-exchange" data-vhost="${vhost}" data-name="${name}">
          <label><input type="checkbox" name="if_unused"> Only if unused</label>
          <button type="submit" class="danger">Delete</button></form></section>` : ''}`;
    },
    async refresh(vhost, path) {
      const name = path === 'amq.default' ? '' : path;
      let x;
      if (name === '') {
        x = (await api(`/exchanges/${enc(vhost)}?${statsQuery()}`)).find((e) => e.name === '');
      } else {
        try {
          x = await api(`/exchanges/${enc(vhost)}/${enc(name)}?${statsQuery()}`);
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) {
            live('#exchange-info', html`<p class="muted">There is no such exchange. <a href="#/exchanges">All exchanges</a></p>`);
            return;
          }
          throw e;
        }
      }
      live('#exchange-info', html`<dl class="facts"><dt>Type</dt><dd>${x.type}</dd>
        <dt>Features</dt><dd class="features">${features(x)}</dd>
        <dt>Policy</dt><dd>${x.policy || ''}</dd><dt>Arguments</dt><dd>${args(x.arguments)}</dd></dl>`);
      ratesChart('exchange-rates', x.message_stats || {}, [['Publish (in)', 'publish_in'], ['Publish (out)', 'publish_out']]);
      const base = `/exchanges/${enc(vhost)}/${enc(exchangePath(name))}/bindings`;
      const [source, destination] = await Promise.all([
        api(`${base}/source`), name ? api(`${base}/destination`) : Promise.resolve([])]);
      live('#bindings-source', bindingRows(source, 'destination', 4));
      if (name) live('#bindings-destination', bindingRows(destination, 'source', 4));
    },
  };

  // --- queues -------------------------------------------------------------------------------

  const queues = {
    tab: 'queues',
    title: () => 'Queues',
    shell: () => html`<h1>Queues</h1>${filterBar('queues', 'queues')}
      <table class="list" id="queues"><thead></thead><tbody></tbody></table>
      <section><h2>Add a new queue</h2>
        <form data-form="add-queue" class="grid">
          ${vhostField()}
          <label>Type <select name="type"><option value="classic">Classic</option><option value="quorum">Quorum</option>
            <option value="stream">Stream</option></select></label>
          <label>Name <input name="name" required autocomplete="off"></label>
          <label>Durability <select name="durable"><option value="true">Durable</option><option value="false">Transient</option></select></label>
          <label>Auto delete <select name="auto_delete"><option value="false">No</option><option value="true">Yes</option></select></label>
          <label class="wide">Arguments <textarea name="arguments" rows="2" placeholder="x-message-ttl = 60000&#10;x-max-length = 1000"></textarea>${argsHelp}</label>
          <div><button type="submit">Add queue</button></div>
        </form></section>`,
    async refresh() {
      const data = await fetchPage('queues', listPath('queues', currentVhost()));
      pager('queues', data, 'queues');
      const showVhost = vhostColumn();
      const s = (field, label) => sortable('queues', field, label);
      live('#queues thead', html`<tr>${showVhost ? html`<th>Virtual host</th>` : ''}${s('name', 'Name')}${s('type', 'Type')}
        <th>Features</th><th>State</th>${s('messages_ready', 'Ready')}${s('messages_unacknowledged', 'Unacked')}
        ${s('messages', 'Total')}${s('consumers', 'Consumers')}<th>Incoming</th><th>Deliver / get</th><th>Ack</th></tr>`);
      live('#queues tbody', data.items.length ? data.items.map((q) => html`<tr data-name="${q.name}" data-vhost="${q.vhost}">
        ${showVhost ? html`<td>${q.vhost}</td>` : ''}
        <td><a href="#/queues/${enc(q.vhost)}/${enc(q.name)}">${q.name}</a></td><td>${q.type}</td>
        <td class="features">${features(q)}</td><td><span class="state">${q.state}</span></td>
        <td class="num ready">${num(q.messages_ready)}</td><td class="num unacked">${num(q.messages_unacknowledged)}</td>
        <td class="num messages">${num(q.messages)}</td><td class="num">${num(q.consumers)}</td>
        <td class="num">${rate(q.message_stats?.publish_details)}</td>
        <td class="num">${rate(q.message_stats?.deliver_get_details)}</td>
        <td class="num">${rate(q.message_stats?.ack_details)}</td></tr>`)
        : empty(12, listState('queues').name ? 'No queues match the filter' : 'No queues'));
    },
  };

  const queue = {
    tab: 'queues',
    title: (vhost, name) => `Queue ${name}`,
    shell: (vhost, name) => html`<h1>Queue <b>${name}</b> <small>in virtual host ${vhost}</small></h1>
      <section><h2>Overview</h2><div id="queue-info"></div>
        <div class="charts">${chartBlock('queue-queued', 'Queued messages')}${chartBlock('queue-rates', 'Message rates')}</div></section>
      <section><h2>Consumers</h2><table class="list"><thead><tr><th>Channel</th><th>Consumer tag</th><th>Ack required</th>
        <th>Exclusive</th><th>Prefetch count</th><th>Active</th><th>Arguments</th></tr></thead><tbody id="queue-consumers"></tbody></table></section>
      <section><h2>Bindings</h2><table class="list"><thead><tr><th>From</th><th>Routing key</th><th>Arguments</th><th></th></tr></thead>
        <tbody id="queue-bindings"></tbody></table>
        <h3>Add binding to this queue</h3>${bindingForm(vhost, 'destination', name)}</section>
      <section><h2>Publish message</h2>${publishForm('queue', vhost, 'amq.default', name)}</section>
      <section><h2>Get messages</h2>
        <p class="warning">Getting messages from a queue is a destructive action unless they are requeued.</p>
        <form data-form="get-messages" data-vhost="${vhost}" data-name="${name}" class="grid">
          <label>Ack mode <select name="ackmode"><option value="ack_requeue_true">Nack message requeue true</option>
            <option value="ack_requeue_false">Automatic ack</option>
            <option value="reject_requeue_true">Reject requeue true</option>
            <option value="reject_requeue_false">Reject requeue false</option></select></label>
          <label>Encoding <select name="encoding"><option value="auto">Auto string / base64</option>
            <option value="base64">base64</option></select></label>
          <label>Messages <input name="count" type="number" min="1" value="1" required></label>
          <label>Truncate at <input name="truncate" type="number" min="0" value="50000"> bytes</label>
          <div><button type="submit">Get Message(s)</button></div>
        </form>
        <div class="got-messages"></div></section>
      <section><h2>Purge</h2><form data-form="purge" data-vhost="${vhost}" data-name="${name}">
        <button type="submit" class="danger">Purge Messages</button></form></section>
      <section><h2>Delete</h2><form data-form="delete-queue" data-vhost="${vhost}" data-name="${name}">
        <label><input type="checkbox" name="if_unused"> Only if unused</label>
        <label><input type="checkbox" name="if_empty"> Only if empty</label>
        <button type="submit" class="danger">Delete Queue</button></form></section>`,
    async refresh(vhost, name) {
      let q;
      try {
        q = await api(`/queues/${enc(vhost)}/${enc(name)}?${statsQuery()}`);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          live('#queue-info', html`<p class="muted">There is no such queue. <a href="#/queues">All queues</a></p>`);
          return;
        }
        throw e;
      }
      live('#queue-info', html`<dl class="facts">
        <dt>Type</dt><dd>${q.type}</dd><dt>Features</dt><dd class="features">${features(q)}</dd>
        <dt>State</dt><dd>${q.state}</dd><dt>Consumers</dt><dd>${num(q.consumers)}</dd>
        <dt>Consumer capacity</dt><dd>${Math.round((q.consumer_capacity || 0) * 100)}%</dd>
        <dt>Messages</dt><dd><span class="queue-messages">${num(q.messages)}</span> total ·
          <span class="queue-ready">${num(q.messages_ready)}</span> ready · ${num(q.messages_unacknowledged)} unacked</dd>
        <dt>Message body bytes</dt><dd>${bytes(q.message_bytes)}</dd><dt>Memory</dt><dd>${bytes(q.memory)}</dd>
        <dt>Policy</dt><dd>${q.policy || ''}</dd>
        <dt>Effective policy definition</dt><dd>${args(q.effective_policy_definition)}</dd>
        <dt>Arguments</dt><dd>${args(q.arguments)}</dd></dl>`);
      queuedChart('queue-queued', q);
      ratesChart('queue-rates', q.message_stats || {}, [['Publish', 'publish'], ['Deliver', 'deliver'],
        ['Deliver (auto ack)', 'deliver_no_ack'], ['Get', 'get'], ['Ack', 'ack'], ['Redelivered', 'redeliver']]);
      const [consumers, bindings] = await Promise.all([
        api(`/consumers/${enc(vhost)}`),
        api(`/queues/${enc(vhost)}/${enc(name)}/bindings`)]);
      const mine = consumers.filter((c) => c.queue.name === name);
      live('#queue-consumers', mine.length ? mine.map((c) => html`<tr>
        <td><a href="#/connections/${enc(c.channel_details.connection_name)}">${c.channel_details.name}</a></td>
        <td>${c.consumer_tag}</td><td>${c.ack_required ? '●' : '○'}</td><td>${c.exclusive ? '●' : '○'}</td>
        <td class="num">${c.prefetch_count}</td><td>${c.active ? '●' : '○'}</td><td>${args(c.arguments)}</td></tr>`)
        : empty(7, 'No consumers'));
      live('#queue-bindings', bindingRows(bindings, 'source', 4));
    },
  };

  function gotMessages(messages) {
    if (!messages.length) return html`<p class="muted">Queue is empty</p>`;
    return messages.map((m, i) => html`<div class="message"><h3>Message ${i + 1}</h3>
      <p class="muted">The server reported ${num(m.message_count)} messages remaining.</p>
      <dl class="facts"><dt>Exchange</dt><dd>${exchangeLabel(m.exchange)}</dd><dt>Routing key</dt><dd>${m.routing_key}</dd>
        <dt>Redelivered</dt><dd>${m.redelivered ? '●' : '○'}</dd>
        <dt>Properties</dt><dd>${Array.isArray(m.properties) ? '' : args(m.properties)}</dd>
        <dt>Payload</dt><dd>${num(m.payload_bytes)} bytes · Encoding: ${m.payload_encoding}
          <pre class="payload">${m.payload}</pre></dd></dl></div>`);
  }

  // --- admin: users, vhosts, permissions, policies --------------------------------------------

  const ADMIN_TABS = [['users', 'Users'], ['vhosts', 'Virtual Hosts'], ['permissions', 'Permissions'], ['policies', 'Policies']];

  const adminShells = {
    users: () => html`<table class="list" id="users"></table>
      <h2>Add a user</h2>
      <form data-form="add-user" class="grid">
        <label>Username <input name="name" required autocomplete="off"></label>
        <label>Password <input name="password" type="password" autocomplete="new-password"></label>
        <label>Tags <input name="tags" placeholder="administrator, monitoring" autocomplete="off"></label>
        <p class="wide tag-picks">Set: ${['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'].map((t) =>
          html`<button type="button" class="link" data-action="pick-tag" data-tag="${t}">${t}</button> `)}
          <button type="button" class="link" data-action="pick-tag" data-tag="">none</button></p>
        <div><button type="submit">Add user</button></div>
      </form>`,
    vhosts: () => html`<table class="list" id="vhosts"></table>
      <h2>Add a new virtual host</h2>
      <form data-form="add-vhost" class="grid">
        <label>Name <input name="name" required autocomplete="off"></label>
        <div><button type="submit">Add virtual host</button></div>
      </form>`,
    permissions: () => html`<table class="list" id="permissions"></table>
      <h2>Set permission</h2>
      <form data-form="set-permission" class="grid">
        <label>User <select name="user" data-users required></select></label>
        ${vhostField()}
        <label>Configure regexp <input name="configure" value=".*"></label>
        <label>Write regexp <input name="write" value=".*"></label>
        <label>Read regexp <input name="read" value=".*"></label>
        <div><button type="submit">Set permission</button></div>
      </form>`,
    policies: () => html`<table class="list" id="policies"></table>
      <h2>Add / update a policy</h2>
      <form data-form="add-policy" class="grid">
        ${vhostField()}
        <label>Name <input name="name" required autocomplete="off"></label>
        <label>Pattern <input name="pattern" required placeholder="^amq\\." autocomplete="off"></label>
        <label>Apply to <select name="apply_to"><option value="all">Exchanges and queues</option>
          <option value="queues">Queues</option><option value="classic_queues">Classic queues</option>
          <option value="quorum_queues">Quorum queues</option><option value="streams">Streams</option>
          <option value="exchanges">Exchanges</option></select></label>
        <label>Priority <input name="priority" type="number" value="0"></label>
        <label class="wide">Definition <textarea name="definition" rows="3" required placeholder="max-length = 1000&#10;message-ttl = 60000"></textarea>${argsHelp}</label>
        <div><button type="submit">Add / update policy</button></div>
      </form>`,
  };

  const adminRefresh = {
    async users() {
      const users = await api('/users');
      const perms = await api('/permissions');
      live('#users', html`<thead><tr><th>Name</th><th>Tags</th><th>Can access virtual hosts</th><th>Has password</th><th></th></tr></thead>
        <tbody>${users.map((u) => html`<tr data-name="${u.name}"><td>${u.name}</td><td>${u.tags.join(', ')}</td>
          <td>${perms.filter((p) => p.user === u.name).map((p) => p.vhost).join(', ') || html`<small class="muted">No access</small>`}</td>
          <td>${u.password_hash ? '●' : '○'}</td>
          <td><button type="button" class="danger small" data-action="delete-user" data-name="${u.name}">Delete</button></td></tr>`)}</tbody>`);
    },
    async vhosts() {
      const vhosts = await api('/vhosts');
      live('#vhosts', html`<thead><tr><th>Name</th><th>Ready</th><th>Unacked</th><th>Total</th><th>Publish</th><th>Deliver / get</th><th></th></tr></thead>
        <tbody>${vhosts.map((v) => html`<tr data-name="${v.name}"><td>${v.name}</td>
          <td class="num">${num(v.messages_ready)}</td><td class="num">${num(v.messages_unacknowledged)}</td><td class="num">${num(v.messages)}</td>
          <td class="num">${rate(v.message_stats?.publish_details)}</td><td class="num">${rate(v.message_stats?.deliver_get_details)}</td>
          <td><button type="button" class="danger small" data-action="delete-vhost" data-name="${v.name}">Delete</button></td></tr>`)}</tbody>`);
    },
    async permissions() {
      const perms = await api(currentVhost() ? `/vhosts/${enc(currentVhost())}/permissions` : '/permissions');
      live('#permissions', html`<thead><tr><th>User</th><th>Virtual host</th><th>Configure regexp</th><th>Write regexp</th><th>Read regexp</th><th></th></tr></thead>
        <tbody>${perms.length ? perms.map((p) => html`<tr data-user="${p.user}" data-vhost="${p.vhost}"><td>${p.user}</td><td>${p.vhost}</td>
          <td><code>${p.configure}</code></td><td><code>${p.write}</code></td><td><code>${p.read}</code></td>
          <td><button type="button" class="danger small" data-action="clear-permission" data-user="${p.user}" data-vhost="${p.vhost}">Clear</button></td></tr>`)
          : empty(6, 'No permissions')}</tbody>`);
    },
    async policies() {
      const policies = await api(listPath('policies', currentVhost()));
      live('#policies', html`<thead><tr><th>Virtual host</th><th>Name</th><th>Pattern</th><th>Apply to</th><th>Definition</th><th>Priority</th><th></th></tr></thead>
        <tbody>${policies.length ? policies.map((p) => html`<tr data-name="${p.name}"><td>${p.vhost}</td><td>${p.name}</td>
          <td><code>${p.pattern}</code></td><td>${p['apply-to']}</td><td>${args(p.definition)}</td><td class="num">${p.priority}</td>
          <td><button type="button" class="danger small" data-action="delete-policy" data-vhost="${p.vhost}" data-name="${p.name}">Delete</button></td></tr>`)
          : empty(7, 'No policies')}</tbody>`);
    },
  };

  const admin = {
    tab: 'admin',
    title: (sub) => (ADMIN_TABS.find(([k]) => k === (sub || 'users')) || ADMIN_TABS[0])[1],
    shell: (sub = 'users') => html`<h1>Admin</h1>
      <nav class="subtabs">${ADMIN_TABS.map(([key, label]) =>
        html`<a href="#/admin/${key}" class="${key === sub ? 'active' : ''}">${label}</a>`)}</nav>
      <h2>${admin.title(sub)}</h2>
      ${isAdmin() ? adminShells[sub]() : html`<p class="muted">Administration needs the administrator tag.</p>`}`,
    async refresh(sub = 'users') {
      if (isAdmin()) await adminRefresh[sub]();
    },
  };

  const PAGES = { overview, connections, connection, channels, exchanges, exchange, queues, queue, admin };

  // --- form handlers and actions ---------------------------------------------------------------

  const FORMS = {
    async 'add-queue'(form, v) {
      const argumentsFound = parseLines(v.arguments);
      if (v.type !== 'classic') argumentsFound['x-queue-type'] = v.type;
      await api(`/queues/${enc(v.vhost)}/${enc(v.name)}`, {
        method: 'PUT',
        body: { durable: v.durable === 'true', auto_delete: v.auto_delete === 'true', arguments: argumentsFound },
      });
      form.elements.name.value = '';
      return `Queue ${v.name} added`;
    },
    async 'add-exchange'(form, v) {
      await api(`/exchanges/${enc(v.vhost)}/${enc(v.name)}`, {
        method: 'PUT',
        body: {
          type: v.type, durable: v.durable === 'true', auto_delete: v.auto_delete === 'true',
          internal: v.internal === 'true', arguments: parseLines(v.arguments),
        },
      });
      form.elements.name.value = '';
      return `Exchange ${v.name} added`;
    },
    async publish(form, v) {
      const properties = { delivery_mode: Number(v.delivery_mode), ...parseLines(v.properties) };
      const headers = parseLines(v.headers);
      if (Object.keys(headers).length) properties.headers = headers;
      const result = await api(`/exchanges/${enc(form.dataset.vhost)}/${enc(form.dataset.exchange)}/publish`, {
        method: 'POST',
        body: { properties, routing_key: v.routing_key, payload: v.payload, payload_encoding: v.payload_encoding },
      });
      return result && result.routed ? 'Message published.' : 'Message published, but not routed.';
    },
    async 'get-messages'(form, v) {
      const messages = await api(`/queues/${enc(form.dataset.vhost)}/${enc(form.dataset.name)}/get`, {
        method: 'POST',
        body: {
          count: Number(v.count) || 1, ackmode: v.ackmode, encoding: v.encoding,
          truncate: v.truncate === '' ? 50000 : Number(v.truncate),
        },
      });
      const out = $('.got-messages', form.parentElement);
      out.innerHTML = part(gotMessages(messages));
      return messages.length ? `${messages.length} message(s) got` : 'Queue is empty';
    },
    async purge(form) {
      if (!confirm(`Purge all messages of queue ${form.dataset.name}?`)) return null;
      await api(`/queues/${enc(form.dataset.vhost)}/${enc(form.dataset.name)}/contents`, { method: 'DELETE' });
      return `Queue ${form.dataset.name} purged`;
    },
    async 'delete-queue'(form, v) {
      if (!confirm(`Delete queue ${form.dataset.name}?`)) return null;
      const query = new URLSearchParams();
      if (v.if_unused) query.set('if-unused', 'true');
      if (v.if_empty) query.set('if-empty', 'true');
      await api(`/queues/${enc(form.dataset.vhost)}/${enc(form.dataset.name)}?${query}`, { method: 'DELETE' });
      flash(`Queue ${form.dataset.name} deleted`);
      location.hash = '#/queues';
      return null;
    },
    async 'delete-exchange'(form, v) {
      if (!confirm(`Delete exchange ${form.dataset.name}?`)) return null;
      await api(`/exchanges/${enc(form.dataset.vhost)}/${enc(form.dataset.name)}${v.if_unused ? '?if-unused=true' : ''}`,
        { method: 'DELETE' });
      flash(`Exchange ${form.dataset.name} deleted`);
      location.hash = '#/exchanges';
      return null;
    },
    async 'add-binding'(form, v) {
      const vhost = form.dataset.vhost;
      const [source, kind, destination] = form.dataset.fixed === 'source'
        ? [form.dataset.name, v.destination_type, v.other] : [v.other, 'q', form.dataset.name];
      await api(`/bindings/${enc(vhost)}/e/${enc(exchangePath(source))}/${kind}/${enc(destination)}`, {
        method: 'POST', body: { routing_key: v.routing_key, arguments: parseLines(v.arguments) },
      });
      form.elements.other.value = '';
      return 'Binding added';
    },
    async 'close-connection'(form, v) {
      if (!confirm(`Close connection ${form.dataset.name}?`)) return null;
      await api(`/connections/${enc(form.dataset.name)}`, {
        method: 'DELETE', headers: { 'X-Reason': v.reason || 'Closed via management plugin' },
      });
      flash('Connection closed');
      location.hash = '#/connections';
      return null;
    },
    async 'add-user'(form, v) {
      const tags = v.tags.split(',').map((t) => t.trim()).filter(Boolean);
      const body = { tags };
      if (v.password) body.password = v.password; else body.password_hash = '';
      await api(`/users/${enc(v.name)}`, { method: 'PUT', body });
      form.reset();
      return `User ${v.name} added`;
    },
    async 'add-vhost'(form, v) {
      await api(`/vhosts/${enc(v.name)}`, { method: 'PUT', body: {} });
      form.reset();
      return `Virtual host ${v.name} added`;
    },
    async 'set-permission'(form, v) {
      await api(`/permissions/${enc(v.vhost)}/${enc(v.user)}`, {
        method: 'PUT', body: { configure: v.configure, write: v.write, read: v.read },
      });
      return `Permission of ${v.user} in ${v.vhost} set`;
    },
    async 'add-policy'(form, v) {
      await api(`/policies/${enc(v.vhost)}/${enc(v.name)}`, {
        method: 'PUT',
        body: { pattern: v.pattern, definition: parseLines(v.definition), priority: Number(v.priority) || 0, 'apply-to': v.apply_to },
      });
      return `Policy ${v.name} set`;
    },
    async 'export-definitions'(form, v) {
      const data = await api('/definitions');
      download(v.filename || definitionsFilename(), JSON.stringify(data, null, 2));
      return `Exported ${data.queues.length} queues, ${data.exchanges.length} exchanges, ${data.users.length} users, ${data.vhosts.length} virtual hosts`;
    },
    async 'import-definitions'(form, v) {
      const file = v.file && v.file[0];
      if (!file) throw new Error('Choose a definitions file');
      const text = await file.text();
      try { JSON.parse(text); } catch { throw new Error(`${file.name} is not JSON`); }
      await api('/definitions', { method: 'POST', body: text });
      return `Definitions imported from ${file.name}`;
    },
  };

  const ACTIONS = {
    sort(b) {
      const s = listState(b.dataset.list);
      if (s.sort === b.dataset.field) s.reverse = !s.reverse; else { s.sort = b.dataset.field; s.reverse = false; }
      return null;
    },
    async 'close-connection'(b) {
      if (!confirm(`Close connection ${b.dataset.name}?`)) return null;
      await api(`/connections/${enc(b.dataset.name)}`, { method: 'DELETE', headers: { 'X-Reason': 'Closed via management plugin' } });
      return 'Connection closed';
    },
    async unbind(b) {
      const d = b.dataset;
      await api(`/bindings/${enc(d.vhost)}/e/${enc(exchangePath(d.source))}/${d.kind}/${enc(d.destination)}/${enc(d.props)}`,
        { method: 'DELETE' });
      return 'Binding removed';
    },
    async 'delete-user'(b) {
      if (!confirm(`Delete user ${b.dataset.name}?`)) return null;
      await api(`/users/${enc(b.dataset.name)}`, { method: 'DELETE' });
      return `User ${b.dataset.name} deleted`;
    },
    async 'delete-vhost'(b) {
      if (!confirm(`Delete virtual host ${b.dataset.name} and everything in it?`)) return null;
      await api(`/vhosts/${enc(b.dataset.name)}`, { method: 'DELETE' });
      if (currentVhost() === b.dataset.name) sessionStorage.removeItem(VHOST_KEY);
      return `Virtual host ${b.dataset.name} deleted`;
    },
    async 'clear-permission'(b) {
      await api(`/permissions/${enc(b.dataset.vhost)}/${enc(b.dataset.user)}`, { method: 'DELETE' });
      return `Permission of ${b.dataset.user} in ${b.dataset.vhost} cleared`;
    },
    async 'delete-policy'(b) {
      if (!confirm(`Delete policy ${b.dataset.name}?`)) return null;
      await api(`/policies/${enc(b.dataset.vhost)}/${enc(b.dataset.name)}`, { method: 'DELETE' });
      return `Policy ${b.dataset.name} deleted`;
    },
    'pick-tag'(b) {
      const input = $('input[name="tags"]', b.closest('form'));
      const tags = input.value.split(',').map((t) => t.trim()).filter(Boolean);
      if (!b.dataset.tag) input.value = '';
      else if (!tags.includes(b.dataset.tag)) input.value = [...tags, b.dataset.tag].join(', ');
      return undefined;
    },
  };

  async function submitForm(form) {
    const handler = FORMS[form.dataset.form];
    const button = $('button[type="submit"]', form);
    if (button) button.disabled = true;
    try {
      const message = await handler(form, values(form));
      if (message) report(form, message, true);
    } catch (e) {
      report(form, e.message, false);
    } finally {
      if (button) button.disabled = false;
    }
    await refreshNow();
  }

  async function refreshNow() {
    // Wait for a refresh under way, then refresh with what the change made.
    for (let i = 0; view.busy && i < 100; i += 1) await new Promise((r) => setTimeout(r, 20));
    await refresh();
  }

  // --- login, logout, wiring ---------------------------------------------------------------

  async function start() {
    session.user = await api('/whoami');
    session.overview = await api('/overview');
    session.vhosts = (await api('/vhosts?columns=name')).map((v) => v.name);
    if (currentVhost() && !session.vhosts.includes(currentVhost())) sessionStorage.removeItem(VHOST_KEY);
    fillSelect($('#vhost-filter'), ['', ...session.vhosts], currentVhost(), (v) => v || 'All');
    $('#whoami').textContent = session.user.name;
    const o = session.overview;
    $('#versions').textContent = `${o.product_name} ${o.product_version} · RabbitMQ ${o.rabbitmq_version} management API`;
    $('#cluster').textContent = `Cluster ${o.cluster_name}`;
    $('#refresh-every').value = sessionStorage.getItem(REFRESH_KEY) || '5';
    $('#login').hidden = true;
    $('#app').hidden = false;
    navigate();
    schedule();
  }

  function showLogin(message = '') {
    $('#app').hidden = true;
    $('#login').hidden = false;
    $('#login-error').textContent = message;
    $('#main').innerHTML = '';
    const name = $('#login input[name="username"]');
    if (name) name.focus();
  }

  function logout(message = '') {
    sessionStorage.removeItem(AUTH_KEY);
    session.auth = null;
    session.user = null;
    clearInterval(view.timer);
    view.page = null;
    view.gen += 1;
    showLogin(message);
  }

  async function login(form) {
    const { username, password } = values(form);
    const auth = basic(username, password);
    $('#login-error').textContent = '';
    const button = $('button', form);
    button.disabled = true;
    try {
      await api('/whoami', { auth });
      session.auth = auth;
      sessionStorage.setItem(AUTH_KEY, auth);
      form.reset();
      await start();
    } catch (e) {
      $('#login-error').textContent = e instanceof ApiError && e.status === 401
        ? (e.message === 'Login failed' ? 'Login failed' : `Login failed: ${e.message}`)
        : `Login failed: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  }

  let filterTimer = null;
  function wire() {
    document.addEventListener('submit', (e) => {
      const form = e.target;
      if (form.name === 'login') { e.preventDefault(); login(form); return; }
      if (form.dataset.form && FORMS[form.dataset.form]) { e.preventDefault(); submitForm(form); }
    });
    document.addEventListener('click', async (e) => {
      const button = e.target.closest('[data-action]');
      if (!button || !ACTIONS[button.dataset.action]) return;
      e.preventDefault();
      try {
        const message = await ACTIONS[button.dataset.action](button);
        if (message === undefined) return;
        if (message) flash(message);
      } catch (err) {
        flash(err.message, false);
      }
      await refreshNow();
    });
    const filterChanged = (e) => {
      const form = e.target.closest('form[data-filter]');
      if (!form) return false;
      const s = listState(form.dataset.filter);
      if (e.target.name === 'page') {
        s.page = Number(e.target.value);
      } else {
        s.name = form.elements.name.value;
        s.regex = form.elements.regex.checked;
        s.size = Number(form.elements.size.value);
        s.page = 1;
      }
      return true;
    };
    document.addEventListener('input', (e) => {
      if (e.target.name === 'name' && filterChanged(e)) {
        clearTimeout(filterTimer);
        filterTimer = setTimeout(refreshNow, 250);
      }
    });
    document.addEventListener('change', (e) => {
      if (e.target.id === 'chart-age') {
        sessionStorage.setItem('amqpbroker.chart-age', e.target.value);
        refreshNow();
      } else if (e.target.name !== 'name' && filterChanged(e)) {
        refreshNow();
      }
    });
    $('#vhost-filter').addEventListener('change', (e) => {
      if (e.target.value) sessionStorage.setItem(VHOST_KEY, e.target.value);
      else sessionStorage.removeItem(VHOST_KEY);
      navigate();
    });
    $('#refresh-every').addEventListener('change', (e) => {
      sessionStorage.setItem(REFRESH_KEY, e.target.value);
      schedule();
    });
    $('#logout').addEventListener('click', () => logout());
    window.addEventListener('hashchange', () => { if (session.auth) navigate(); });
    window.addEventListener('resize', () => { if (view.page) { $$('[data-shown]').forEach((el) => delete el.dataset.shown); refresh(); } });
  }

  wire();
  if (session.auth) start().catch(() => logout());
  else showLogin();
})();
