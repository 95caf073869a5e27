// Tern console: refreshes the server-rendered tables from the admin API and
// keeps 15 minutes of readings in memory for the charts. No library.
(function () {
  "use strict";
  var EVERY = Number(new URLSearchParams(location.search).get("every")) || 2000;
  var KEEP_MS = 15 * 60 * 1000;
  // Rates and percentiles are over the readings of the last RATE_MS (as
  // Prometheus' rate() over a range), so one quiet poll does not show 0.
  var RATE_MS = 30 * 1000;
  var history = [];
  var readings = [];
  var polls = 0;

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function get(path, json) {
    return fetch(path, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return json ? r.json() : r.text();
    });
  }
  // Prometheus text: [{name, labels, value}].
  function parseMetrics(text) {
    var out = [];
    text.split("\n").forEach(function (line) {
      if (!line || line[0] === "#") return;
      var m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) return;
      var labels = {};
      var re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g, l;
      while ((l = re.exec(m[3] || ""))) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
      out.push({ name: m[1], labels: labels, value: Number(m[4]) });
    });
    return out;
  }
  function sumsBy(samples, name, by) {
    var out = {};
    samples.forEach(function (s) {
      if (s.name === name && by in s.labels) out[s.labels[by]] = (out[s.labels[by]] || 0) + s.value;
    });
    return out;
  }
  function buckets(samples) {
    var out = {};
    samples.forEach(function (s) {
      if (s.name === "tern_submit_latency_seconds_bucket") out[s.labels.le] = s.value;
    });
    return out;
  }
  // A percentile from the histogram's growth between two readings.
  function percentile(now, before, q) {
    var les = Object.keys(now).filter(function (k) { return k !== "+Inf"; })
      .map(Number).sort(function (a, b) { return a - b; });
    var total = (now["+Inf"] || 0) - ((before || {})["+Inf"] || 0);
    if (total <= 0) return null;
    for (var i = 0; i < les.length; i++) {
      var key = Object.keys(now).filter(function (k) { return Number(k) === les[i]; })[0];
      var n = now[key] - ((before || {})[key] || 0);
      if (n >= q * total) return les[i];
    }
    return les.length ? les[les.length - 1] : null;
  }
  function rate(now, before, key, dt) {
    if (!before || dt <= 0) return null;
    var d = (now[key] || 0) - (before[key] || 0);
    return d >= 0 ? d / dt : null;
  }
  function fmt(x, digits) { return x == null ? "-" : x.toFixed(digits); }

  function render(d, r) {
    var h = "";
    h += '<h2>Upstreams</h2><div class="wrap"><table id="upstreams"><tr><th>upstream</th>' +
      '<th>state</th><th>breaker</th><th class="n">sessions</th><th class="n">in flight</th>' +
      '<th class="n">submits</th><th class="n">send rate /s</th></tr>';
    d.upstreams.forEach(function (u) {
      var state = u.bound > 0 ? "up" : "down", n = esc(u.name), b = esc(u.breaker);
      h += '<tr data-upstream="' + n + '"><td>' + n + '</td><td class="state ' + state + '">' + state +
        '</td><td class="breaker ' + b + '">' + b + '</td><td class="n sessions">' + u.bound + "/" +
        u.pool_size + '</td><td class="n">' + u.in_flight + '</td><td class="n submits">' +
        (r.sent[u.name] || 0) + '</td><td class="n rate" data-rate="' + fmt(r.sendRates[u.name], 3) +
        '">' + fmt(r.sendRates[u.name], 1) + "</td></tr>";
    });
    h += '</table></div><h2>Clients</h2><div class="wrap"><table id="clients"><tr><th>client</th>' +
      '<th class="n">sessions</th><th class="n">in flight</th><th class="n">submits</th>' +
      '<th class="n">submit rate /s</th></tr>';
    var clients = {};
    Object.keys(r.submits).forEach(function (c) { clients[c] = [0, 0]; });
    d.sessions.forEach(function (s) {
      var c = clients[s.account] || (clients[s.account] = [0, 0]);
      c[0] += 1; c[1] += s.in_flight || 0;
    });
    Object.keys(clients).sort().forEach(function (c) {
      h += '<tr data-client="' + esc(c) + '"><td>' + esc(c) + '</td><td class="n sessions">' +
        clients[c][0] + '</td><td class="n">' + clients[c][1] + '</td><td class="n submits">' +
        (r.submits[c] || 0) + '</td><td class="n rate" data-rate="' + fmt(r.clientRates[c], 3) + '">' +
        fmt(r.clientRates[c], 1) + "</td></tr>";
    });
    var q = d.queues;
    h += '</table></div><h2>Queues</h2><div class="wrap"><table id="queues"><tr><th class="n">ready</th>' +
      '<th class="n">in flight</th><th class="n">outbox</th><th class="n">unmatched</th>' +
      '<th class="n">oldest ready (s)</th></tr><tr>';
    ["ready", "in_flight", "outbox", "unmatched"].forEach(function (k) {
      h += '<td class="n" id="q-' + k + '">' + (q[k] == null ? "?" : q[k]) + "</td>";
    });
    h += '<td class="n" id="q-age">' + r.readyAge.toFixed(1) + "</td></tr>";
    if (q.error) h += '<tr><td colspan="5" class="bad">' + esc(q.error) + "</td></tr>";
    h += '</table></div><h2>Receipts by state</h2><div class="wrap"><table id="receipts"><tr>' +
      '<th>state</th><th class="n">received</th></tr>';
    Object.keys(r.receipts).sort().forEach(function (s) {
      h += '<tr data-state="' + esc(s) + '"><td>' + esc(s) + '</td><td class="n">' + r.receipts[s] + "</td></tr>";
    });
    var rl = d.reload, ok = !!rl.ok;
    h += '</table></div><h2>Last reload</h2><div class="wrap"><table id="reload"><tr><th>generation</th>' +
      '<th>at</th><th>outcome</th><th class="n">changes</th></tr><tr><td>' + (rl.generation || 0) +
      '</td><td class="at" data-at="' + (rl.at || "") + '">' + (rl.at ? new Date(rl.at * 1000).toISOString() : "") +
      '</td><td class="' + (ok ? "up" : "bad") + '" id="reload-outcome">' +
      esc(ok ? "ok" : "failed: " + (rl.error || "")) + '</td><td class="n">' + (rl.changes || []).length +
      "</td></tr></table></div>";
    document.getElementById("tables").innerHTML = h;
  }

  // A line chart of the last 15 minutes, drawn as inline SVG.
  function chart(title, series) {
    // The x axis spans what the page has seen, up to 15 minutes.
    var w = 300, hgt = 80, t1 = Date.now(), t0 = t1 - KEEP_MS, max = 0;
    if (history.length && history[0].t > t0) t0 = history[0].t;
    var span = Math.max(t1 - t0, 1);
    series.forEach(function (s) {
      history.forEach(function (p) { var v = s.get(p); if (v != null && v > max) max = v; });
    });
    var svg = '<svg viewBox="0 0 ' + w + " " + hgt + '" preserveAspectRatio="none">';
    series.forEach(function (s) {
      var pts = history.filter(function (p) { return s.get(p) != null; }).map(function (p) {
        var x = ((p.t - t0) / span) * w, y = hgt - 2 - (max > 0 ? (s.get(p) / max) * (hgt - 4) : 0);
        return x.toFixed(1) + "," + y.toFixed(1);
      });
      svg += '<polyline fill="none" stroke="' + s.color + '" stroke-width="1.5" points="' + pts.join(" ") + '"/>';
    });
    var now = history.length ? history[history.length - 1] : null;
    var legend = series.map(function (s) {
      var v = now ? s.get(now) : null;
      return '<span style="color:' + s.color + '">' + esc(s.label) + " " + fmt(v, s.digits) + "</span>";
    }).join(" · ");
    var mins = Math.round(span / 60000);
    return '<div class="chart"><h3>' + esc(title) + ", last " + (mins > 0 ? mins + " min" : Math.round(span / 1000) + " s") +
      " (max " + fmt(max, 3) + ")</h3>" + svg + "</svg>" + legend + "</div>";
  }
  function charts() {
    document.getElementById("charts").innerHTML =
      chart("Rates /s", [
        { label: "sent", color: "#1f6feb", digits: 1, get: function (p) { return p.send; } },
        { label: "accepted", color: "#107a3a", digits: 1, get: function (p) { return p.accept; } }
      ]) +
      chart("Submit latency (s, bucket bound)", [
        { label: "p50", color: "#107a3a", digits: 4, get: function (p) { return p.p50; } },
        { label: "p99", color: "#b3261e", digits: 4, get: function (p) { return p.p99; } }
      ]) +
      chart("Ready queue", [
        { label: "depth", color: "#a66300", digits: 0, get: function (p) { return p.ready; } }
      ]);
  }

  function poll() {
    Promise.all([
      get("/api/upstreams", true), get("/api/sessions", true), get("/api/queues", true),
      get("/api/reload", true), get("/metrics", false)
    ]).then(function (res) {
      function list(v) { return Array.isArray(v) ? v : []; }
      var d = { upstreams: list(res[0]), sessions: list(res[1]), queues: res[2] || {}, reload: res[3] || {} };
      var samples = parseMetrics(res[4]), t = Date.now();
      var r = {
        sent: sumsBy(samples, "tern_upstream_submits_total", "upstream"),
        submits: sumsBy(samples, "tern_submits_total", "client"),
        receipts: sumsBy(samples, "tern_receipts_total", "state"),
        buckets: buckets(samples), readyAge: 0, sendRates: {}, clientRates: {}
      };
      samples.forEach(function (s) { if (s.name === "tern_ready_age_seconds") r.readyAge = s.value; });
      while (readings.length > 1 && readings[1].t <= t - RATE_MS) readings.shift();
      var last = readings.length ? readings[0] : null;
      var dt = last ? (t - last.t) / 1000 : 0, sendTotal = null, acceptTotal = null;
      Object.keys(r.sent).forEach(function (u) {
        r.sendRates[u] = rate(r.sent, last && last.sent, u, dt);
        if (r.sendRates[u] != null) sendTotal = (sendTotal || 0) + r.sendRates[u];
      });
      Object.keys(r.submits).forEach(function (c) {
        r.clientRates[c] = rate(r.submits, last && last.submits, c, dt);
        if (r.clientRates[c] != null) acceptTotal = (acceptTotal || 0) + r.clientRates[c];
      });
      render(d, r);
      history.push({
        t: t, send: sendTotal, accept: acceptTotal, ready: d.queues.ready,
        p50: last ? percentile(r.buckets, last.buckets, 0.5) : null,
        p99: last ? percentile(r.buckets, last.buckets, 0.99) : null
      });
      while (history.length && history[0].t < t - KEEP_MS) history.shift();
      charts();
      readings.push({ t: t, sent: r.sent, submits: r.submits, buckets: r.buckets });
      polls += 1;
      document.body.setAttribute("data-polls", String(polls));
      document.getElementById("status").textContent = "live, every " + EVERY / 1000 + " s; updated " + new Date(t).toLocaleTimeString();
    }).catch(function (e) {
      document.getElementById("status").textContent = "update failed: " + e.message;
    }).then(function () { setTimeout(poll, EVERY); });
  }

  // The search box: the trace shown in place, as `tern trace` reads it.
  function trace(id) {
    var out = document.getElementById("trace");
    if (!id) { out.innerHTML = ""; return; }
    fetch("/api/messages/" + encodeURIComponent(id), { cache: "no-store" }).then(function (r) {
      return r.json().then(function (body) {
        out.innerHTML = r.ok ? "<h2>Trace " + esc(id) + "</h2><pre>" + esc(JSON.stringify(body, null, 2)) + "</pre>"
          : '<h2 class="bad">No message ' + esc(id) + "</h2>";
      });
    }).catch(function (e) { out.innerHTML = '<p class="bad">' + esc(e.message) + "</p>"; });
  }
  document.getElementById("trace-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var id = document.getElementById("trace-id").value.trim();
    if (id) window.history.replaceState(null, "", "#trace=" + encodeURIComponent(id));
    trace(id);
  });
  // A link to a trace: /#trace=ID opens it (the address bar keeps the
  // search, so it can be shared or reloaded).
  var linked = /^#trace=(.+)$/.exec(location.hash);
  if (linked) {
    document.getElementById("trace-id").value = decodeURIComponent(linked[1]);
    trace(decodeURIComponent(linked[1]));
  }
  poll();
})();
