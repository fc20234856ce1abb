/* Sample browser. Data comes from the JSON block above; every piece of it reaches the
   page through textContent or option.text, never as markup. */
(function () {
  "use strict";
  var root = document.getElementById("sample-browser");
  var blob = document.getElementById("sample-data");
  if (!root || !blob) { return; }
  var sets = JSON.parse(blob.textContent).sets || [];
  if (!sets.length) { root.setAttribute("data-ready", "1"); return; }

  function byId(id) { return document.getElementById(id); }
  var ui = { set: byId("s-set"), metric: byId("s-metric"), a: byId("s-epoch-a"), b: byId("s-epoch-b"),
             filter: byId("s-filter"), worse: byId("s-worse"), min: byId("s-min"), max: byId("s-max"), count: byId("s-count"), note: byId("s-note"),
             rows: byId("s-rows"), headA: byId("s-head-a"), headB: byId("s-head-b") };
  var sort = { key: "delta", dir: 1 };   // worst change first
  var focus = null;   // an item opened from a link (#sample=SET/EPOCH/METRIC/ID), shown alone until a filter changes

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }
  function option(select, value, text) {
    var o = document.createElement("option");
    o.value = String(value);
    o.textContent = text;
    select.appendChild(o);
  }
  function fmt(v) { return v === null || v === undefined ? "–" : (Math.round(v * 100) / 100).toFixed(2); }
  function current() { return sets[Number(ui.set.value) || 0]; }

  sets.forEach(function (s, i) { option(ui.set, i, s.label === s.task ? s.task : s.label + " · " + s.task); });
  if (sets.length < 2) { ui.set.disabled = true; }

  function fillSetControls() {
    var s = current();
    clear(ui.metric); clear(ui.a); clear(ui.b);
    s.metrics.forEach(function (m, i) { option(ui.metric, i, m.name + (m.higher ? " (↑ better)" : " (↓ better)")); });
    if (!s.metrics.length) { option(ui.metric, -1, "no per-sample scores"); }
    s.epochs.forEach(function (e, i) { option(ui.a, i, "epoch " + e); option(ui.b, i, "epoch " + e); });
    ui.a.value = String(s.epochs.length - 1);
    ui.b.value = "0";
    var note = s.n_shown + " of " + s.n_total + " samples";
    if (s.n_shown < s.n_total) { note += " (the first " + s.n_shown + " by id are embedded; the rest are in the samples files)"; }
    if (s.n_truncated) { note += "; " + s.n_truncated + " texts longer than " + s.max_chars + " characters are cut"; }
    ui.note.textContent = note + ".";
  }

  function matches(s, i, a, b, needle) {
    if (!needle) { return true; }
    var fields = [s.ids[i], s.source[i], s.reference[i], s.output[a][i], s.output[b][i]];
    for (var k = 0; k < fields.length; k++) {
      if (fields[k] && String(fields[k]).toLowerCase().indexOf(needle) >= 0) { return true; }
    }
    return false;
  }

  function selectedRows() {
    var s = current(), a = Number(ui.a.value), b = Number(ui.b.value);
    var metric = s.metrics[Number(ui.metric.value)] || null;
    var scores = metric ? s.scores[metric.name] : null;
    var needle = ui.filter.value.trim().toLowerCase();
    var lo = ui.min.value === "" ? null : Number(ui.min.value);
    var hi = ui.max.value === "" ? null : Number(ui.max.value);
    var out = [];
    for (var i = 0; i < s.ids.length; i++) {
      var sa = scores ? scores[a][i] : null, sb = scores ? scores[b][i] : null;
      var delta = sa === null || sb === null ? null : sa - sb;
      var gain = delta === null ? null : (metric.higher ? delta : -delta);
      if (focus !== null) {
        if (String(s.ids[i]) !== focus) { continue; }
      } else {
        if (ui.worse.checked && !(gain !== null && gain < 0)) { continue; }
        if ((lo !== null && !(sa !== null && sa >= lo)) || (hi !== null && !(sa !== null && sa <= hi))) { continue; }
        if (!matches(s, i, a, b, needle)) { continue; }
      }
      out.push({ i: i, id: String(s.ids[i]), a: sa, b: sb, delta: delta, gain: gain });
    }
    var key = sort.key === "delta" ? "gain" : sort.key, dir = sort.dir;
    out.sort(function (x, y) {
      var u = x[key], v = y[key];
      if (u === null && v === null) { return x.i - y.i; }
      if (u === null) { return 1; }      // rows without a score go last either way
      if (v === null) { return -1; }
      if (u < v) { return -dir; }
      if (u > v) { return dir; }
      return x.i - y.i;
    });
    return out;
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text === null || text === undefined ? "–" : String(text);
    tr.appendChild(td);
    return td;
  }

  function render() {
    var s = current(), a = Number(ui.a.value), b = Number(ui.b.value);
    var rows = selectedRows();
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-id", r.id);
      if (s.cut_by_length[a][r.i]) { tr.className = "length"; }
      if (r.id === focus) { tr.className += " focus"; }
      cell(tr, r.id);
      cell(tr, s.source[r.i], "txt");
      cell(tr, s.reference[r.i], "txt");
      cell(tr, s.output[a][r.i], "txt out-a");
      cell(tr, s.output[b][r.i], "txt out-b");
      cell(tr, fmt(r.a), "n");
      cell(tr, fmt(r.b), "n");
      var d = cell(tr, r.delta === null ? null : (r.delta > 0 ? "+" : "") + fmt(r.delta), "n");
      if (r.gain !== null && r.gain < 0) { d.className += " worse"; }
      if (r.gain !== null && r.gain > 0) { d.className += " better"; }
      frag.appendChild(tr);
    });
    clear(ui.rows);
    ui.rows.appendChild(frag);
    ui.headA.textContent = "output @ epoch " + s.epochs[a];
    ui.headB.textContent = "output @ epoch " + s.epochs[b];
    var heads = root.querySelectorAll("th.sortable");
    for (var k = 0; k < heads.length; k++) {
      var th = heads[k], key = th.getAttribute("data-sort");
      th.classList.remove("asc", "desc");
      if (key === sort.key) { th.classList.add(sort.dir > 0 ? "asc" : "desc"); }
      if (key === "a") { th.textContent = "score @" + s.epochs[a]; }
      if (key === "b") { th.textContent = "score @" + s.epochs[b]; }
    }
    ui.count.textContent = rows.length + " of " + s.ids.length + " shown" +
      (focus !== null ? " (item " + focus + ", opened from a link: change a filter to see the others)" : "");
    root.setAttribute("data-visible", String(rows.length));
    root.setAttribute("data-focus", focus === null ? "" : focus);
    root.setAttribute("data-ready", "1");
  }

  function unfocus() { focus = null; }
  ui.set.addEventListener("change", function () { unfocus(); fillSetControls(); render(); });
  [ui.metric, ui.a, ui.b].forEach(function (el) { el.addEventListener("change", render); });
  ui.worse.addEventListener("change", function () { unfocus(); render(); });
  [ui.filter, ui.min, ui.max].forEach(function (el) { el.addEventListener("input", function () { unfocus(); render(); }); });

  // Links from the diagnostics' top regressions: #sample=SET/EPOCH/METRIC/ID opens that item,
  // the given epoch against epoch 0, on that metric.
  function openFromHash() {
    var m = /^#sample=(\d+)\/(\d+)\/([^\/]*)\/(.+)$/.exec(window.location.hash);
    if (!m || !sets[Number(m[1])]) { return false; }
    var s = sets[Number(m[1])], id, metric;
    try { id = decodeURIComponent(m[4]); metric = decodeURIComponent(m[3]); } catch (e) { return false; }
    if (s.ids.indexOf(id) < 0) { return false; }
    ui.set.value = m[1];
    fillSetControls();
    s.metrics.forEach(function (x, i) { if (x.name === metric) { ui.metric.value = String(i); } });
    var a = s.epochs.indexOf(Number(m[2]));
    if (a >= 0) { ui.a.value = String(a); }
    ui.b.value = String(Math.max(0, s.epochs.indexOf(0)));
    ui.filter.value = ""; ui.min.value = ""; ui.max.value = ""; ui.worse.checked = false;
    focus = id;
    render();
    root.scrollIntoView();
    return true;
  }
  window.addEventListener("hashchange", openFromHash);   // back/forward, or a link typed in
  document.addEventListener("click", function (ev) {
    // open at once (hashchange comes later, and not at all when the same link is clicked twice)
    var link = ev.target && ev.target.closest ? ev.target.closest("a.sample-link") : null;
    if (!link) { return; }
    ev.preventDefault();
    window.location.hash = link.getAttribute("href");
    openFromHash();
  });
  var sortable = root.querySelectorAll("th.sortable");
  for (var k = 0; k < sortable.length; k++) {
    sortable[k].addEventListener("click", function (ev) {
      var key = ev.currentTarget.getAttribute("data-sort");
      sort = { key: key, dir: sort.key === key ? -sort.dir : 1 };
      render();
    });
  }
  fillSetControls();
  render();
  openFromHash();
})();
