'use strict';
// MFN console: static pages over the coordinator's JSON API. The session
// cookie authenticates every call; writes carry the session's CSRF token.
// No framework, no build step; DOM built with createElement only.

var S = { session: null, timer: null, ws: null, wsTries: 0, view: '' };

function el(tag, attrs, kids) {
  var e = document.createElement(tag);
  if (attrs) {
    Object.keys(attrs).forEach(function (k) {
      if (k === 'text') { e.textContent = attrs[k]; } else if (k === 'cls') { e.className = attrs[k]; } else { e.setAttribute(k, attrs[k]); }
    });
  }
  (kids || []).forEach(function (c) {
    if (c === null || c === undefined) { return; }
    e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  });
  return e;
}

function svgEl(tag, attrs) {
  var e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
  return e;
}

function table(id, head, rows) {
  var thead = el('thead', null, [el('tr', null, head.map(function (h) { return el('th', { text: h }); }))]);
  var tbody = el('tbody', null, rows);
  var t = el('table', id ? { id: id } : null, [thead, tbody]);
  return t;
}

function td(v, cls) { return el('td', cls ? { cls: cls, text: String(v) } : { text: String(v) }); }

function showError(msg) { document.getElementById('error').textContent = msg || ''; }

function api(path, opts) {
  opts = opts || {};
  var h = { 'Accept': 'application/json' };
  if (opts.method && opts.method !== 'GET') {
    h['X-CSRF-Token'] = S.session ? S.session.csrf : '';
    h['Content-Type'] = 'application/json';
  }
  return fetch(path, { method: opts.method || 'GET', headers: h, body: opts.body, credentials: 'same-origin', cache: 'no-store' })
    .then(function (r) {
      if (r.status === 401) { location.assign('/ui/login#expired'); throw new Error('session ended'); }
      return r.text().then(function (t) {
        var body = null;
        try { body = t ? JSON.parse(t) : null; } catch (e) { body = null; }
        if (!r.ok) {
          var m = body && body.error ? body.error.message : t;
          var err = new Error(r.status + ': ' + m);
          err.status = r.status;
          throw err;
        }
        return body;
      });
    });
}

function canOperate() { return S.session && (S.session.role === 'operator' || S.session.role === 'admin'); }
function canAudit() { return S.session && S.session.role !== 'reader'; }

function confirmThen(text, fn) {
  var d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  d.returnValue = '';
  d.addEventListener('close', function onClose() {
    d.removeEventListener('close', onClose);
    if (d.returnValue === 'ok') { fn(); }
  });
  d.showModal();
}

function fmtTime(s) {
  if (!s || s.indexOf('0001-') === 0) { return '-'; }
  var d = new Date(s);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function seconds(a, b) {
  if (!a || !b || b.indexOf('0001-') === 0) { return '-'; }
  return ((new Date(b) - new Date(a)) / 1000).toFixed(2) + ' s';
}

// ---- pages ----

function renderCluster(v) {
  return Promise.all([api('/v1/cluster'), fetch('/readyz', { cache: 'no-store' }).then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })])
    .then(function (res) {
      var st = res[0], rd = res[1];
      v.replaceChildren(
        el('h1', { text: 'Cluster' }),
        el('p', null, ['Health of this member: ', el('span', { id: 'health', cls: rd.ok ? 'ok' : 'bad', text: rd.ok ? 'ready' : 'not ready' })]),
        table('cluster-status', ['member', 'state', 'leader', 'term', 'commit index', 'applied index', 'last index', 'audit size'], [el('tr', null, [
          td(st.id), td(st.state), td(st.leader_id || '-'), td(st.term, 'num'), td(st.commit_index, 'num'),
          td(st.applied_index, 'num'), td(st.last_index, 'num'), td(st.audit_size, 'num')])]),
        el('h2', { text: 'Members' }),
        table('members', ['id', 'suffrage', 'leader', 'raft', 'quic', 'http'], (st.members || []).map(function (m) {
          return el('tr', null, [td(m.id), td(m.suffrage), td(m.leader ? 'leader' : ''), td(m.raft_addr || '-'), td(m.quic_addr || '-'), td(m.http_addr || '-')]);
        })));
    });
}

function stopButton(job) {
  if (job.state !== 'running') { return null; }
  var b = el('button', { cls: 'danger', type: 'button', 'data-stop': job.spec.id, text: 'Stop' });
  if (!canOperate()) { b.disabled = true; b.title = 'needs an operator key'; }
  b.addEventListener('click', function () {
    confirmThen('Stop job ' + job.spec.id + '? Its open round fails and no further round opens.', function () {
      api('/v1/jobs/' + encodeURIComponent(job.spec.id) + '/stop', { method: 'POST', body: JSON.stringify({ reason: 'stopped from the console by ' + S.session.key }) })
        .then(function () { showError(''); refresh(); })
        .catch(function (e) { showError('Stop refused: ' + e.message); });
    });
  });
  return b;
}

function renderJobs(v) {
  return api('/v1/jobs').then(function (l) {
    var jobs = l.jobs || [];
    v.replaceChildren(el('h1', { text: 'Jobs' }),
      table('jobs', ['job', 'task', 'rule', 'state', 'progress', 'failed', 'model', ''], jobs.map(function (j) {
        var p = el('progress', { max: String(j.spec.rounds || 1), value: String(j.completed) });
        return el('tr', { 'data-job': j.spec.id }, [
          el('td', null, [el('a', { href: '#/jobs/' + encodeURIComponent(j.spec.id), text: j.spec.id })]),
          td(j.spec.task), td(j.spec.rule.name + (j.spec.rule.f ? ' f=' + j.spec.rule.f : '')), td(j.state + (j.reason ? ' (' + j.reason + ')' : '')),
          el('td', null, [p, ' ' + j.completed + '/' + j.spec.rounds]), td(j.failed, 'num'), td('v' + j.model_version),
          el('td', null, [stopButton(j)])]);
      })));
  });
}

function chart(points, label) {
  var W = 480, H = 160, P = 30;
  var s = svgEl('svg', { 'class': 'chart', width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': label });
  s.appendChild(svgEl('line', { 'class': 'axis', x1: P, y1: H - P, x2: W - 5, y2: H - P }));
  s.appendChild(svgEl('line', { 'class': 'axis', x1: P, y1: 5, x2: P, y2: H - P }));
  var t = svgEl('text', { x: P + 4, y: 14 }); t.textContent = label; s.appendChild(t);
  if (points.length === 0) { var n = svgEl('text', { x: W / 2 - 40, y: H / 2 }); n.textContent = 'no data yet'; s.appendChild(n); return s; }
  var xmax = Math.max.apply(null, points.map(function (p) { return p[0]; }));
  var xmin = Math.min.apply(null, points.map(function (p) { return p[0]; }));
  var ymax = Math.max.apply(null, points.map(function (p) { return p[1]; }));
  var ymin = Math.min.apply(null, points.map(function (p) { return p[1]; }));
  if (ymax === ymin) { ymax += 0.5; ymin -= 0.5; }
  if (xmax === xmin) { xmax += 1; }
  var d = points.map(function (p, i) {
    var x = P + (p[0] - xmin) / (xmax - xmin) * (W - P - 10);
    var y = (H - P) - (p[1] - ymin) / (ymax - ymin) * (H - P - 20);
    return (i ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
  }).join(' ');
  s.appendChild(svgEl('path', { 'class': 'line', d: d }));
  var a = svgEl('text', { x: 2, y: H - P }); a.textContent = ymin.toFixed(2); s.appendChild(a);
  var b = svgEl('text', { x: 2, y: 24 }); b.textContent = ymax.toFixed(2); s.appendChild(b);
  var c = svgEl('text', { x: W - 60, y: H - 10 }); c.textContent = 'round ' + xmax; s.appendChild(c);
  return s;
}

function bundleLink(u) {
  if (!canAudit() || u.leaf_index === undefined) { return '-'; }
  return el('a', { href: '/v1/audit/bundles/' + u.leaf_index, download: 'bundle-' + u.leaf_index + '.json', text: 'leaf ' + u.leaf_index });
}

function renderJob(v, id) {
  return Promise.all([api('/v1/jobs/' + encodeURIComponent(id)), api('/v1/jobs/' + encodeURIComponent(id) + '/rounds')]).then(function (res) {
    var j = res[0], rounds = (res[1].rounds || []).slice().sort(function (a, b) { return a.number - b.number; });
    var spec = Object.assign({}, j.spec); delete spec.initial_model;
    var acc = [], used = [];
    rounds.forEach(function (r) {
      if (r.result && typeof r.result.accuracy === 'number') { acc.push([r.number, r.result.accuracy]); }
      if (r.result) { used.push([r.number, r.result.rejected]); }
    });
    var roundRows = rounds.slice().reverse().map(function (r) {
      var res = r.result || {};
      return el('tr', { 'data-round': String(r.number) }, [td(r.number, 'num'), td(r.state + (r.fail_reason ? ': ' + r.fail_reason : '')),
        td((r.updates || []).length, 'num'), td(r.result ? res.used : '-', 'num'), td(r.result ? res.rejected : '-', 'num'),
        td(typeof res.accuracy === 'number' ? res.accuracy.toFixed(3) : '-', 'num'), td(seconds(r.opened_at, r.ended_at), 'num'),
        td(r.result ? res.aggregation_seconds.toFixed(3) + ' s' : '-', 'num')]);
    });
    var updRows = [];
    rounds.slice(-20).reverse().forEach(function (r) {
      (r.updates || []).forEach(function (u) {
        var verdict = r.result || r.state === 'closed' ? (u.used ? 'used' : 'rejected') : 'pending';
        updRows.push(el('tr', { cls: verdict, 'data-node': u.node }, [td(r.number, 'num'), td(u.node), td(verdict),
          td(u.reason || ''), td(typeof u.score === 'number' ? u.score.toPrecision(4) : '-', 'num'), td(u.samples, 'num'),
          td(fmtTime(u.accepted_at)), el('td', null, [bundleLink(u)])]));
      });
    });
    v.replaceChildren(el('h1', null, ['Job ', el('span', { id: 'job-id', text: j.spec.id }), ' ', stopButton(j)]),
      el('p', null, ['State ', el('strong', { id: 'job-state', text: j.state }), j.reason ? ' (' + j.reason + ')' : '',
        ' — rounds completed ' + j.completed + ' of ' + j.spec.rounds + ', failed ' + j.failed + ', model v' + j.model_version]),
      el('progress', { max: String(j.spec.rounds || 1), value: String(j.completed) }),
      el('h2', { text: 'Curves' }), chart(acc, 'accuracy per round'), ' ', chart(used, 'updates rejected per round'),
      el('h2', { text: 'Rounds' }),
      table('rounds', ['round', 'state', 'updates', 'used', 'rejected', 'accuracy', 'close latency', 'aggregation'], roundRows),
      el('h2', { text: 'Updates (last 20 rounds): the rule\'s verdict per node' }),
      table('updates', ['round', 'node', 'verdict', 'reason', 'score', 'samples', 'accepted', 'proof bundle'], updRows),
      el('h2', { text: 'Spec' }), el('pre', { id: 'spec', text: JSON.stringify(spec, null, 2) }));
  });
}

function renderNodes(v) {
  return Promise.all([api('/v1/nodes'), api('/v1/jobs')]).then(function (res) {
    var nodes = res[0].nodes || [], jobs = res[1].jobs || [];
    return Promise.all(jobs.map(function (j) { return api('/v1/jobs/' + encodeURIComponent(j.spec.id) + '/rounds'); })).then(function (rl) {
      var stats = {};
      rl.forEach(function (l) {
        (l.rounds || []).forEach(function (r) {
          (r.updates || []).forEach(function (u) {
            var s = stats[u.node] || (stats[u.node] = { rounds: 0, rejected: 0, last: '' });
            s.rounds++;
            if (r.result && !u.used) { s.rejected++; }
            if (u.accepted_at > s.last) { s.last = u.accepted_at; }
          });
        });
      });
      v.replaceChildren(el('h1', { text: 'Nodes' }),
        table('nodes', ['node', 'state', 'enrolled', 'last seen', 'rounds taken part in', 'rejections', ''], nodes.map(function (n) {
          var s = stats[n.id] || { rounds: 0, rejected: 0, last: '' };
          var b = null;
          if (!n.revoked) {
            b = el('button', { cls: 'danger', type: 'button', 'data-revoke': n.id, text: 'Revoke' });
            if (!canOperate()) { b.disabled = true; b.title = 'needs an operator key'; }
            b.addEventListener('click', function () {
              confirmThen('Revoke node ' + n.id + '? Its updates are refused from now on.', function () {
                api('/v1/nodes/' + encodeURIComponent(n.id) + '/revoke', { method: 'POST', body: '{}' })
                  .then(function () { showError(''); refresh(); })
                  .catch(function (e) { showError('Revoke refused: ' + e.message); });
              });
            });
          }
          return el('tr', { 'data-node': n.id }, [td(n.id), td(n.revoked ? 'revoked ' + fmtTime(n.revoked_at) : 'enrolled'), td(fmtTime(n.enrolled_at)),
            td(fmtTime(s.last)), td(s.rounds, 'num'), td(s.rejected, 'num'), el('td', null, [b])]);
        })));
    });
  });
}

function renderAudit(v) {
  if (!canAudit()) {
    v.replaceChildren(el('h1', { text: 'Audit' }), el('p', { id: 'audit-denied', text: 'The audit log needs an auditor, operator or admin key; this session is a ' + S.session.role + '.' }));
    return Promise.resolve();
  }
  return api('/v1/audit/checkpoints').then(function (l) {
    var cps = (l.checkpoints || []).slice().reverse();
    var leaf = el('input', { id: 'leaf', type: 'number', min: '0', value: '0' });
    var link = el('a', { id: 'bundle-link', href: '/v1/audit/bundles/0', download: 'bundle-0.json', text: 'download the proof bundle of leaf 0' });
    leaf.addEventListener('input', function () {
      var n = Math.max(0, parseInt(leaf.value, 10) || 0);
      link.href = '/v1/audit/bundles/' + n; link.download = 'bundle-' + n + '.json';
      link.textContent = 'download the proof bundle of leaf ' + n;
    });
    v.replaceChildren(el('h1', { text: 'Audit log' }),
      el('p', null, ['Tree size ', el('strong', { id: 'tree-size', text: cps.length ? String(cps[0].size) : '0' }),
        ', ' + cps.length + ' signed checkpoint(s)' + (l.complete ? '' : ' (newest only)') + '.']),
      el('p', null, [el('label', { 'for': 'leaf', text: 'Leaf index ' }), leaf, ' ', link]),
      table('checkpoints', ['tree size', 'root', 'signed note'], cps.slice(0, 50).map(function (c) {
        return el('tr', null, [td(c.size, 'num'), el('td', { cls: 'mono', text: c.root }), el('td', null, [el('pre', { cls: 'mono', text: c.note })])]);
      })));
  });
}

// ---- router and live updates ----

function route() {
  var h = location.hash || '#/cluster';
  var m;
  document.querySelectorAll('header nav a').forEach(function (a) { a.className = h.indexOf(a.getAttribute('href')) === 0 ? 'active' : ''; });
  var v = document.getElementById('view');
  var p;
  if (h === '#/jobs') { p = renderJobs(v); } else if ((m = /^#\/jobs\/(.+)$/.exec(h))) { p = renderJob(v, decodeURIComponent(m[1])); } else if (h === '#/nodes') { p = renderNodes(v); } else if (h === '#/audit') { p = renderAudit(v); } else { p = renderCluster(v); }
  S.view = h;
  return p.then(function () { document.body.setAttribute('data-rendered', h); }).catch(function (e) { showError(e.message); });
}

function refresh() {
  if (S.timer) { return; }
  S.timer = setTimeout(function () { S.timer = null; if (!document.querySelector('dialog[open]')) { route(); } }, 300);
}

function connect() {
  var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
  var ws = new WebSocket(proto + location.host + '/v1/events');
  var live = document.getElementById('live');
  S.ws = ws;
  ws.onopen = function () { S.wsTries = 0; live.textContent = 'live'; live.className = 'live'; };
  ws.onmessage = function (m) {
    var ev;
    try { ev = JSON.parse(m.data); } catch (e) { return; }
    if (ev.kind === 'subscribed') { return; }
    refresh();
  };
  ws.onclose = function () {
    live.textContent = 'offline'; live.className = 'live off';
    if (S.ws !== ws || S.wsTries >= 20) { return; }
    S.wsTries++;
    setTimeout(connect, Math.min(30000, 500 * Math.pow(2, S.wsTries)));
  };
}

function logout() {
  var ws = S.ws; S.ws = null;
  if (ws) { ws.close(); }
  fetch('/ui/logout', { method: 'POST', headers: { 'X-CSRF-Token': S.session ? S.session.csrf : '' }, credentials: 'same-origin' })
    .finally(function () { location.assign('/ui/login#out'); });
}

document.addEventListener('DOMContentLoaded', function () {
  document.getElementById('logout').addEventListener('click', logout);
  fetch('/ui/session', { credentials: 'same-origin', cache: 'no-store' }).then(function (r) {
    if (!r.ok) { location.assign('/ui/login'); return null; }
    return r.json();
  }).then(function (s) {
    if (!s) { return; }
    S.session = s;
    document.getElementById('who').textContent = s.key + ' (' + s.role + ')';
    document.body.setAttribute('data-role', s.role);
    window.addEventListener('hashchange', route);
    route();
    connect();
  });
});
