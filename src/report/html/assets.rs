//! The report page's own style and script, inline so that the page works offline and as a
//! mail attachment. The script holds no data: it sorts and filters the table's rows by their
//! `data-*` attributes, and keeps its state in the URL's hash (`#sort=duration&order=desc&
//! status=failed`), so that a link (or a headless browser) opens the page sorted.

pub const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.15em; margin: 1.5em 0 .5em; }
code, pre { font-family: ui-monospace, monospace; font-size: 12px; }
.meta span { margin-right: 1.2em; }
.st { padding: 0 .4em; border-radius: 3px; background: #e6f4ea; color: #1e6b34; }
.st.fail { background: #fde7e7; color: #a11; }
.st.other { background: #eee; color: #555; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #ddd; vertical-align: middle; }
th[data-key] { cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " \25B2"; } th[aria-sort="descending"]::after { content: " \25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.cmd code { display: inline-block; max-width: 32em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; vertical-align: bottom; }
.controls { margin: .5em 0; }
svg.gantt { width: 100%; height: auto; border: 1px solid #ddd; }
svg.gantt text { font-size: 11px; fill: #333; }
svg.gantt .tick { stroke: #eee; }
svg.gantt text.bar-label { fill: #fff; pointer-events: none; }
.bar { fill: #4c9a5e; } .bar.failed { fill: #d33; } .bar.attempt { fill-opacity: .45; }
.bar.critical { stroke: #222; stroke-width: 2; }
.legend span { margin-right: 1.2em; } .swatch { display: inline-block; width: 1.4em; height: .8em; vertical-align: middle; margin-right: .3em; }
svg.spark polyline { fill: none; stroke: #68a; stroke-width: 1.2; }
svg.spark circle { fill: #68a; } svg.spark circle.failed { fill: #d33; } svg.spark circle.now { stroke: #222; stroke-width: 1; }
details { border: 1px solid #ddd; border-radius: 4px; margin: .5em 0; padding: .3em .8em; }
details.fail { border-color: #e99; }
summary { cursor: pointer; font-weight: 600; }
pre.stream { background: #f7f7f7; padding: .5em; overflow: auto; max-height: 30em; white-space: pre-wrap; word-break: break-all; }
.note { color: #666; font-style: italic; margin: .2em 0; }
"#;

pub const SCRIPT: &str = r#"
(function () {
  var table = document.getElementById('jobs');
  if (!table) { return; }
  var body = table.tBodies[0];
  var select = document.getElementById('status-filter');
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells).filter(function (th) {
    return th.hasAttribute('data-key');
  });
  function params() {
    var p = {};
    location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
      var i = kv.indexOf('=');
      if (i > 0) { p[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1)); }
    });
    return p;
  }
  function go(p) {
    var parts = [];
    ['sort', 'order', 'status'].forEach(function (k) {
      if (p[k]) { parts.push(k + '=' + encodeURIComponent(p[k])); }
    });
    location.hash = parts.join('&');
    apply();
  }
  function apply() {
    var p = params();
    var head = heads.filter(function (th) { return th.getAttribute('data-key') === p.sort; })[0];
    var key = head ? p.sort : 'index';
    var numeric = head ? head.getAttribute('data-type') === 'num' : true;
    var desc = p.order === 'desc';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.getAttribute('data-' + key) || '', y = b.getAttribute('data-' + key) || '';
      var c = numeric ? parseFloat(x) - parseFloat(y) : (x < y ? -1 : x > y ? 1 : 0);
      if (!c) { c = parseFloat(a.getAttribute('data-index')) - parseFloat(b.getAttribute('data-index')); }
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    heads.forEach(function (th) {
      if (th === head) { th.setAttribute('aria-sort', desc ? 'descending' : 'ascending'); }
      else { th.removeAttribute('aria-sort'); }
    });
    var status = p.status || '';
    select.value = status;
    var shown = 0;
    rows.forEach(function (r) {
      var st = r.getAttribute('data-status');
      var keep = !status || st === status || (status === 'failures' && r.getAttribute('data-failure') === '1');
      r.hidden = !keep;
      if (keep) { shown++; }
    });
    document.getElementById('shown').textContent = shown + ' of ' + rows.length + ' jobs shown';
  }
  heads.forEach(function (th) {
    th.addEventListener('click', function () {
      var p = params(), key = th.getAttribute('data-key');
      p.order = p.sort === key && p.order !== 'desc' ? 'desc' : 'asc';
      p.sort = key;
      go(p);
    });
  });
  select.addEventListener('change', function () {
    var p = params();
    p.status = select.value;
    go(p);
  });
  window.addEventListener('hashchange', apply);
  apply();
})();
"#;
