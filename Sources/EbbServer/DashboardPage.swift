/// The page `GET /dashboard` serves: hand-written HTML, CSS and JavaScript, no outside
/// assets (it works offline). It polls `/dashboard/data` every second and draws the ranks,
/// the expert-placement heat map, throughput and latency over time with resize, failure and
/// autoscaler markers, the last resizes' phases and the autoscaler's decisions. With API
/// keys on, it asks for a key (or takes one from the address's `#key=…` fragment, which
/// never reaches the server's logs) and sends it as `Authorization: Bearer`.
///
/// Elements carry `data-*` attributes with the numbers they show, so a headless browser
/// can check what rendered (tests/integration/test_dashboard.py).
enum DashboardPage {
    static let html = #"""
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Ebb dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#6b7385; --line:#e1e4ea;
          --blue:#2f6fde; --green:#2f9e5b; --red:#d64545; --amber:#d99a1e; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--ink); }
  header { display:flex; align-items:center; gap:18px; padding:12px 20px; background:var(--ink); color:#fff; }
  header h1 { font-size:18px; margin:0; font-weight:600; }
  header .kv { color:#c9cfdb; } header .kv b { color:#fff; }
  .badge { padding:2px 10px; border-radius:10px; font-weight:600; font-size:12px; background:var(--green); color:#fff; }
  .badge.resizing { background:var(--blue); } .badge.recovering { background:var(--red); } .badge.down { background:#777; }
  main { display:grid; grid-template-columns: 1fr 1fr; gap:14px; padding:14px 20px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; min-width:0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size:14px; margin:0 0 8px; color:var(--muted); font-weight:600; text-transform:uppercase; letter-spacing:.04em; }
  table { border-collapse:collapse; width:100%; font-variant-numeric: tabular-nums; }
  th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { color:var(--muted); font-weight:500; }
  .bar { display:inline-block; width:90px; height:9px; background:var(--line); border-radius:5px; vertical-align:middle; margin-right:6px; overflow:hidden; }
  .bar i { display:block; height:100%; background:var(--blue); }
  canvas { width:100%; display:block; }
  .legend { color:var(--muted); font-size:12px; margin-top:4px; }
  .legend span { margin-right:14px; } .sw { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; vertical-align:middle; }
  .phases { display:flex; height:12px; width:260px; border-radius:3px; overflow:hidden; background:var(--line); }
  .phases i { display:block; height:100%; }
  #events li, #decisions li { margin:2px 0; } ul { padding-left:18px; margin:0; }
  #keyform { display:none; padding:20px; } #keyform.show { display:block; }
  .muted { color:var(--muted); }
</style>
</head>
<body>
<header>
  <h1>Ebb</h1>
  <span class="kv">model <b id="model">…</b></span>
  <span class="kv">generation <b id="generation" data-value="">…</b></span>
  <span class="kv">ranks <b id="rank-count" data-value="">…</b></span>
  <span id="state" class="badge down" data-value="">connecting</span>
  <span class="kv">autoscaler <b id="autoscaler">…</b></span>
  <span class="kv" style="margin-left:auto" id="updated">not updated yet</span>
</header>
<div id="keyform">
  <p>This server needs an API key to show its state.</p>
  <input id="key" type="password" size="40" placeholder="API key"> <button id="keybutton">Show</button>
  <p class="muted" id="keyerror"></p>
</div>
<main id="main">
  <section>
    <h2>Ranks</h2>
    <table id="ranks"><thead><tr><th>rank</th><th>engine</th><th>state</th><th>running</th><th>waiting</th><th>KV cache</th><th>assigned</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Expert placement <span class="muted" id="heatmap-caption"></span></h2>
    <canvas id="heatmap" height="220" data-layers="0" data-slots="0"></canvas>
    <div class="legend">rows: MoE layers · columns: physical slots, rank boundaries marked · color: tokens of the slot's expert in EPLB's window (per layer, white = none, dark = the layer's busiest slot)</div>
  </section>
  <section class="wide">
    <h2>Throughput and ranks</h2>
    <canvas id="throughput" height="200" data-samples="0"></canvas>
    <div class="legend"><span><i class="sw" style="background:var(--blue)"></i>output tokens/s</span><span><i class="sw" style="background:var(--ink)"></i>ranks (right axis)</span><span><i class="sw" style="background:rgba(47,111,222,.15)"></i>resizing</span><span><i class="sw" style="background:rgba(214,69,69,.18)"></i>recovering</span><span><i class="sw" style="background:var(--green)"></i>autoscaler</span><span><i class="sw" style="background:var(--red)"></i>rank lost</span><span><i class="sw" style="background:var(--amber)"></i>resize done</span></div>
  </section>
  <section class="wide">
    <h2>Latency (p90 over 5 s)</h2>
    <canvas id="latency" height="170" data-samples="0"></canvas>
    <div class="legend"><span><i class="sw" style="background:var(--blue)"></i>time to first token (ms)</span><span><i class="sw" style="background:var(--green)"></i>time per output token (ms)</span><span><i class="sw" style="background:var(--amber)"></i>requests in flight (right axis)</span></div>
  </section>
  <section>
    <h2>Last resizes</h2>
    <table id="resizes" data-rows="0"><thead><tr><th>gen</th><th>ranks</th><th>outcome</th><th>seconds</th><th>phases</th></tr></thead><tbody></tbody></table>
    <div class="legend" id="phase-legend"></div>
  </section>
  <section>
    <h2>Events</h2>
    <ul id="events" data-count="0"></ul>
    <h2 style="margin-top:12px">Autoscaler decisions</h2>
    <ul id="decisions" data-count="0"></ul>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const phaseColors = ["#2f6fde", "#2f9e5b", "#d99a1e", "#8e5bd6", "#d64545", "#17a2b8", "#6b7385", "#c2185b"];
const phaseColor = {};
let key = null;

function readKey() {
  const m = /(?:^|[#&])key=([^&]+)/.exec(location.hash);
  if (m) { key = decodeURIComponent(m[1]); sessionStorage.setItem("ebb-key", key); history.replaceState(null, "", location.pathname); }
  else key = sessionStorage.getItem("ebb-key");
}

function text(el, s) { el.textContent = s; }
function fmt(x, digits) { return (x === null || x === undefined) ? "–" : Number(x).toFixed(digits); }
function clock(t) { const d = new Date(t * 1000); return d.toLocaleTimeString([], {hour12: false}); }

function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v; else if (k === "style") e.setAttribute("style", v); else e.setAttribute(k, v);
  }
  for (const c of children || []) e.appendChild(c);
  return e;
}

function sizeCanvas(c) {
  const ratio = window.devicePixelRatio || 1, w = c.clientWidth || 600, h = Number(c.getAttribute("height"));
  if (c.width !== Math.round(w * ratio)) { c.width = Math.round(w * ratio); c.height = Math.round(h * ratio); c.style.height = h + "px"; }
  const g = c.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  return [g, w, h];
}

function drawRanks(status) {
  const body = $("ranks").tBodies[0];
  body.replaceChildren();
  for (const r of status.ranks) {
    const kv = Math.max(0, Math.min(1, r.kv_cache_usage || 0));
    const bar = el("span", {class: "bar"}, [el("i", {style: "width:" + (kv * 100).toFixed(1) + "%"})]);
    const kvCell = el("td", {}, [bar, document.createTextNode((kv * 100).toFixed(0) + "%")]);
    body.appendChild(el("tr", {"data-state": r.state, "data-rank": r.rank === null ? "" : String(r.rank)}, [
      el("td", {text: r.rank === null ? "–" : String(r.rank)}), el("td", {text: r.engine_id}), el("td", {text: r.state}),
      el("td", {text: String(r.running)}), el("td", {text: String(r.waiting)}), kvCell, el("td", {text: String(r.requests_assigned)})]));
  }
}

function drawHeatmap(placement) {
  const c = $("heatmap");
  const [g, w, h] = sizeCanvas(c);
  const rows = placement && placement.slot_load ? placement.slot_load : [];
  const layers = rows.length, slots = layers ? rows[0].length : 0;
  c.setAttribute("data-layers", String(layers)); c.setAttribute("data-slots", String(slots));
  if (!layers || !slots) {
    g.fillStyle = "#6b7385"; g.font = "13px system-ui";
    g.fillText(placement && placement.num_experts ? "waiting for EPLB's first decision under load" : "no expert placement (EPLB off)", 10, 24);
    text($("heatmap-caption"), "");
    return;
  }
  const left = 34, top = 4, cw = (w - left - 4) / slots, ch = (h - top - 18) / layers;
  for (let l = 0; l < layers; l++) {
    const max = Math.max(1e-9, ...rows[l]);
    for (let s = 0; s < slots; s++) {
      const v = rows[l][s] / max;
      const shade = Math.round(255 - v * 200);
      g.fillStyle = "rgb(" + Math.round(255 - v * 215) + "," + shade + "," + Math.round(255 - v * 60) + ")";
      g.fillRect(left + s * cw, top + l * ch, Math.max(1, cw - 0.5), Math.max(1, ch - 0.5));
    }
    if (layers <= 64 && (layers <= 16 || l % 4 === 0)) { g.fillStyle = "#6b7385"; g.font = "10px system-ui"; g.fillText("L" + l, 2, top + l * ch + Math.min(ch, 12) - 2); }
  }
  const perRank = placement.slots_per_rank || 0;
  if (perRank > 0 && perRank < slots) {
    g.strokeStyle = "#1d2330"; g.lineWidth = 1.5;
    for (let s = perRank; s < slots; s += perRank) { g.beginPath(); g.moveTo(left + s * cw, top); g.lineTo(left + s * cw, top + layers * ch); g.stroke(); }
  }
  g.fillStyle = "#6b7385"; g.font = "10px system-ui";
  const ranks = perRank > 0 ? Math.ceil(slots / perRank) : 1;
  for (let r = 0; r < ranks; r++) g.fillText("rank " + r, left + r * perRank * cw + 3, h - 4);
  text($("heatmap-caption"), "· " + layers + " layers × " + slots + " slots at EPLB's last decision, " + (placement.rearrangements || 0) + " rearrangements");
}

function bands(g, samples, x, top, bottom) {
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i], next = samples[i + 1] || s;
    if (s.scaling || s.recovering) {
      g.fillStyle = s.recovering ? "rgba(214,69,69,.18)" : "rgba(47,111,222,.15)";
      g.fillRect(x(s.unix_time), top, Math.max(2, x(next.unix_time) - x(s.unix_time)), bottom - top);
    }
  }
}

function markers(g, events, x, top, bottom, t0) {
  const colors = {resize: "#d99a1e", failure: "#d64545", autoscale: "#2f9e5b"};
  for (const e of events) {
    if (e.unix_time < t0) continue;
    g.strokeStyle = colors[e.kind] || "#777"; g.lineWidth = 2;
    g.beginPath(); g.moveTo(x(e.unix_time), top); g.lineTo(x(e.unix_time), bottom); g.stroke();
  }
}

function line(g, samples, x, y, key, color, step) {
  g.strokeStyle = color; g.lineWidth = 1.8; g.beginPath();
  let started = false, prevY = 0;
  for (const s of samples) {
    const v = s[key];
    if (v === null || v === undefined) { started = false; continue; }
    const px = x(s.unix_time), py = y(v);
    if (!started) { g.moveTo(px, py); started = true; }
    else { if (step) g.lineTo(px, prevY); g.lineTo(px, py); }
    prevY = py;
  }
  g.stroke();
}

function axes(g, w, h, pad, maxL, maxR, t0, t1, unitL, unitR) {
  g.strokeStyle = "#e1e4ea"; g.lineWidth = 1; g.fillStyle = "#6b7385"; g.font = "10px system-ui";
  for (let i = 0; i <= 4; i++) {
    const yy = pad.top + (h - pad.top - pad.bottom) * i / 4;
    g.beginPath(); g.moveTo(pad.left, yy); g.lineTo(w - pad.right, yy); g.stroke();
    g.fillText(fmt(maxL * (1 - i / 4), maxL < 10 ? 1 : 0) + (i === 0 ? " " + unitL : ""), 2, yy + 3);
    if (maxR !== null) g.fillText(fmt(maxR * (1 - i / 4), maxR < 10 ? 1 : 0) + (i === 0 ? " " + unitR : ""), w - pad.right + 4, yy + 3);
  }
  g.fillText(clock(t0), pad.left, h - 3);
  g.fillText(clock(t1), w - pad.right - 46, h - 3);
}

function drawSeries(timeline) {
  const samples = timeline.samples, events = timeline.events;
  for (const id of ["throughput", "latency"]) $(id).setAttribute("data-samples", String(samples.length));
  if (samples.length < 1) return;
  const t0 = samples[0].unix_time, t1 = Math.max(t0 + 5, samples[samples.length - 1].unix_time);
  {
    const c = $("throughput"), [g, w, h] = sizeCanvas(c), pad = {left: 44, right: 58, top: 8, bottom: 16};
    const x = (t) => pad.left + (w - pad.left - pad.right) * (t - t0) / (t1 - t0);
    const maxT = Math.max(10, ...samples.map((s) => s.tokens_per_second)) * 1.1;
    const maxR = Math.max(2, ...samples.map((s) => s.ranks)) + 1;
    bands(g, samples, x, pad.top, h - pad.bottom);
    axes(g, w, h, pad, maxT, maxR, t0, t1, "tok/s", "ranks");
    markers(g, events, x, pad.top, h - pad.bottom, t0);
    line(g, samples, x, (v) => h - pad.bottom - (h - pad.top - pad.bottom) * v / maxT, "tokens_per_second", "#2f6fde", false);
    line(g, samples, x, (v) => h - pad.bottom - (h - pad.top - pad.bottom) * v / maxR, "ranks", "#1d2330", true);
  }
  {
    const c = $("latency"), [g, w, h] = sizeCanvas(c), pad = {left: 44, right: 58, top: 8, bottom: 16};
    const x = (t) => pad.left + (w - pad.left - pad.right) * (t - t0) / (t1 - t0);
    const ms = samples.map((s) => ({unix_time: s.unix_time, scaling: s.scaling, recovering: s.recovering, live: s.live,
      ttft: s.ttft_p90 === null ? null : s.ttft_p90 * 1000, tpot: s.tpot_p90 === null ? null : s.tpot_p90 * 1000}));
    const maxL = Math.max(10, ...ms.map((s) => Math.max(s.ttft || 0, s.tpot || 0))) * 1.1;
    const maxR = Math.max(4, ...ms.map((s) => s.live)) * 1.1;
    bands(g, ms, x, pad.top, h - pad.bottom);
    axes(g, w, h, pad, maxL, maxR, t0, t1, "ms", "req");
    markers(g, events, x, pad.top, h - pad.bottom, t0);
    line(g, ms, x, (v) => h - pad.bottom - (h - pad.top - pad.bottom) * v / maxR, "live", "#d99a1e", true);
    line(g, ms, x, (v) => h - pad.bottom - (h - pad.top - pad.bottom) * v / maxL, "ttft", "#2f6fde", false);
    line(g, ms, x, (v) => h - pad.bottom - (h - pad.top - pad.bottom) * v / maxL, "tpot", "#2f9e5b", false);
  }
}

function drawResizes(events) {
  const body = $("resizes").tBodies[0];
  body.replaceChildren();
  const recent = events.slice(-6).reverse();
  for (const ev of recent) {
    const phases = Object.entries(ev.phases || {});
    const total = phases.reduce((a, [, v]) => a + v, 0) || 1;
    const bar = el("div", {class: "phases", title: phases.map(([k, v]) => k + " " + v.toFixed(3) + " s").join(", ")},
      phases.map(([k, v]) => {
        if (!(k in phaseColor)) phaseColor[k] = phaseColors[Object.keys(phaseColor).length % phaseColors.length];
        return el("i", {style: "width:" + (100 * v / total).toFixed(2) + "%;background:" + phaseColor[k], "data-phase": k});
      }));
    body.appendChild(el("tr", {"data-outcome": ev.outcome}, [el("td", {text: String(ev.generation)}), el("td", {text: ev.from + "→" + ev.to}),
      el("td", {text: ev.outcome}), el("td", {text: fmt(ev.total_seconds, 2)}), el("td", {}, [bar])]));
  }
  $("resizes").setAttribute("data-rows", String(recent.length));
  $("phase-legend").replaceChildren(...Object.entries(phaseColor).map(([k, c]) =>
    el("span", {}, [el("i", {class: "sw", style: "background:" + c}), document.createTextNode(k)])));
}

function drawEvents(timeline, autoscaler) {
  const list = $("events");
  const recent = timeline.events.slice(-12).reverse();
  list.replaceChildren(...recent.map((e) => el("li", {"data-kind": e.kind, text: clock(e.unix_time) + " " + e.kind + ": " + e.label})));
  list.setAttribute("data-count", String(timeline.events.length));
  if (recent.length === 0) list.replaceChildren(el("li", {class: "muted", text: "nothing yet"}));
  const decisions = $("decisions");
  const records = autoscaler && autoscaler.decisions ? autoscaler.decisions.slice(-8).reverse() : [];
  decisions.replaceChildren(...records.map((d) => el("li", {text: clock(d.unix_time) + " " + (d.action === "scale" ? "scale to " + d.to : d.action) + (d.repeats > 1 ? " ×" + d.repeats : "") + ": " + d.reason})));
  decisions.setAttribute("data-count", String(records.length));
  if (!autoscaler) decisions.replaceChildren(el("li", {class: "muted", text: "autoscaler off (ebb serve --autoscale)"}));
}

function render(data) {
  text($("model"), data.model);
  const status = data.status;
  if (!status) {
    const e = data.engine;
    drawRanks({ranks: [{rank: 0, engine_id: "engine", state: "serving", running: e.running, waiting: e.waiting,
                        kv_cache_usage: e.kv_cache_usage, requests_assigned: "–"}]});
    drawHeatmap(null);
    text($("generation"), "–"); text($("rank-count"), "1"); $("rank-count").setAttribute("data-value", "1");
    const st = $("state"); st.className = "badge"; text(st, "serving (elastic EP off)"); st.setAttribute("data-value", "serving");
    text($("updated"), "updated " + clock(Date.now() / 1000));
    return;
  }
  const serving = status.ranks.filter((r) => r.rank !== null).length;
  text($("generation"), String(status.generation)); $("generation").setAttribute("data-value", String(status.generation));
  text($("rank-count"), String(serving)); $("rank-count").setAttribute("data-value", String(serving));
  const st = $("state"), state = status.is_recovering ? "recovering" : status.is_scaling ? "resizing" : "serving";
  st.className = "badge " + (state === "serving" ? "" : state); text(st, state); st.setAttribute("data-value", state);
  const a = status.autoscaler;
  text($("autoscaler"), a ? (a.enabled ? "on, " + a.min_data_parallel_size + "–" + a.max_data_parallel_size + " ranks" : "paused") : "off");
  drawRanks(status);
  drawHeatmap(status.placement);
  drawSeries(data.timeline);
  drawResizes(status.events || []);
  drawEvents(data.timeline, a);
  text($("updated"), "updated " + clock(Date.now() / 1000));
}

async function poll() {
  try {
    const headers = key ? {"Authorization": "Bearer " + key} : {};
    const response = await fetch("/dashboard/data", {headers: headers, cache: "no-store"});
    if (response.status === 401 || response.status === 403) {
      $("keyform").classList.add("show"); $("main").style.display = "none";
      text($("keyerror"), key ? "that key was refused" : "");
    } else if (response.ok) {
      $("keyform").classList.remove("show"); $("main").style.display = "";
      render(await response.json());
    } else {
      const st = $("state"); st.className = "badge down"; text(st, "HTTP " + response.status);
    }
  } catch (err) {
    const st = $("state"); st.className = "badge down"; text(st, "unreachable"); st.setAttribute("data-value", "unreachable");
  }
  setTimeout(poll, 1000);
}

$("keybutton").addEventListener("click", () => { key = $("key").value; sessionStorage.setItem("ebb-key", key); });
readKey();
poll();
</script>
</body>
</html>
"""#
}
