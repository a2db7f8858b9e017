/* txmsg dashboard: live parts, charts and confirmed actions (no framework). */
(function () {
  "use strict";
  var body = document.body;
  var csrf = body.getAttribute("data-csrf");
  var interval = parseInt(body.getAttribute("data-interval"), 10) || 5000;
  var busy = false;

  function refresh() {
    var parts = document.querySelectorAll("[data-refresh]");
    parts.forEach(function (el) {
      fetch(el.getAttribute("data-refresh"), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { if (!busy) { el.innerHTML = html; } })
        .catch(function () {});
    });
    document.querySelectorAll("svg[data-chart]").forEach(drawChart);
  }

  function flash(message, failed) {
    var el = document.getElementById("flash");
    el.textContent = message;
    el.className = failed ? "failed" : "";
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList.contains("action")) { return; }
    event.preventDefault();
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { return; }
    busy = true;
    var data = new URLSearchParams(new FormData(form));
    if (question) { data.set("confirmed", "1"); }
    fetch(form.getAttribute("action"), {
      method: "POST", credentials: "same-origin", body: data,
      headers: {"Accept": "application/json", "X-CSRF-Token": csrf}
    }).then(function (r) { return r.json(); }).then(function (answer) {
      busy = false;
      flash(answer.message, !answer.ok);
      var next = form.querySelector("input[name=next]");
      if (answer.ok && next) { window.location.href = form.getAttribute("action").replace(/\/[a-z]+$/, ""); }
      else { refresh(); }
    }).catch(function (e) { busy = false; flash("request failed: " + e, true); });
  });

  var NS = "http://www.w3.org/2000/svg";
  function el(name, attrs) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function series(points, kind) {
    if (kind === "depth") {
      return [["ready", points.map(function (p) { return p.ready; })],
              ["unacked", points.map(function (p) { return p.unacked; })],
              ["dead", points.map(function (p) { return p.dead; })]];
    }
    var net = points.map(function (p, i) {
      if (i === 0 || p.depth === null || points[i - 1].depth === null) { return null; }
      var dt = p.time - points[i - 1].time;
      return dt > 0 ? (p.depth - points[i - 1].depth) / dt : null;
    });
    return [["in/s", points.map(function (p) { return p.in_rate; })],
            ["out/s", points.map(function (p) { return p.out_rate; })],
            ["net/s", net]];
  }

  function drawChart(svg) {
    fetch(svg.getAttribute("data-src"), {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var points = data.points || [], W = 600, H = 160, L = 40, B = 18;
        while (svg.firstChild) { svg.removeChild(svg.firstChild); }
        var lines = series(points, svg.getAttribute("data-chart"));
        var values = [];
        lines.forEach(function (s) { s[1].forEach(function (v) { if (v !== null && v !== undefined) { values.push(v); } }); });
        var lo = Math.min(0, Math.min.apply(null, values.concat([0])));
        var hi = Math.max(1, Math.max.apply(null, values.concat([1])));
        var t0 = points.length ? points[0].time : 0, t1 = points.length ? points[points.length - 1].time : 1;
        var x = function (t) { return L + (W - L - 4) * (t1 > t0 ? (t - t0) / (t1 - t0) : 1); };
        var y = function (v) { return 4 + (H - B - 4) * (1 - (v - lo) / (hi - lo)); };
        svg.appendChild(el("line", {x1: L, y1: y(lo), x2: W, y2: y(lo), "class": "axis"}));
        svg.appendChild(el("line", {x1: L, y1: 4, x2: L, y2: H - B, "class": "axis"}));
        [hi, lo].forEach(function (v) {
          var t = el("text", {x: 2, y: y(v) + 4}); t.textContent = (+v.toFixed(1)).toString(); svg.appendChild(t);
        });
        var age = el("text", {x: L, y: H - 4});
        var span = t1 - t0;
        age.textContent = !points.length ? "no samples yet" :
          (span < 120 ? Math.round(span) + " s" : Math.round(span / 60) + " min") + " of history, " + points.length + " samples";
        svg.appendChild(age);
        lines.forEach(function (s, i) {
          var pts = [];
          points.forEach(function (p, j) { var v = s[1][j]; if (v !== null && v !== undefined) { pts.push(x(p.time).toFixed(1) + "," + y(v).toFixed(1)); } });
          if (!pts.length) { return; }
          svg.appendChild(el("polyline", {points: pts.join(" "), "class": "s" + i}));
          var label = el("text", {x: W - 70, y: 12 + 12 * i, "class": "s" + i}); label.textContent = s[0];
          label.setAttribute("style", "fill: currentColor"); svg.appendChild(label);
        });
      }).catch(function () {});
  }

  document.querySelectorAll("svg[data-chart]").forEach(drawChart);
  window.setInterval(refresh, interval);
})();
