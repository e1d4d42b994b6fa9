// renderq console: live pages. A page whose <main> names a data-feed polls it every
// data-refresh-ms and updates the DOM in place. Text goes in through textContent only
// (never innerHTML), so nothing from a render (ids, user names, errors) can inject markup.
"use strict";

(function () {
  const main = document.querySelector("main[data-feed]");
  if (!main) return;
  const every = Math.max(200, Number(main.dataset.refreshMs) || 1500);

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "-" : String(cell);
      tr.appendChild(td);
    }
    return tr;
  }
  function fill(id, rows, empty, columns) {
    const body = document.getElementById(id);
    if (!body) return;
    body.replaceChildren(...rows);
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = el("td", empty, "dim");
      td.colSpan = columns;
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }
  function duration(s) {
    if (s === null || s === undefined) return "-";
    s = Math.max(0, s);
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m" + String(Math.floor(s % 60)).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m";
  }
  function card(label, value, cls) {
    const box = el("div", null, "card");
    box.appendChild(el("span", label, "label"));
    box.appendChild(el("span", value, "value" + (cls ? " " + cls : "")));
    return box;
  }
  function link(href, text) {
    const a = el("a", text);
    a.href = href;
    return a;
  }
  function bar(progress) {
    const wrap = el("span");
    const p = document.createElement("progress");
    p.max = 1;
    p.value = progress;
    wrap.appendChild(p);
    wrap.appendChild(el("span", " " + Math.round(progress * 100) + "%"));
    return wrap;
  }

  function drawOverview(doc) {
    const now = Date.parse(doc.generated_at);
    document.getElementById("generated").textContent = "as of " + doc.generated_at.slice(11, 19) + " UTC";
    const counts = document.getElementById("counts");
    counts.replaceChildren(...["pending", "rendering", "complete", "failed", "cancelled"].map(
      (s) => card(s, doc.counts[s] || 0, "status status-" + s)));
    const t = doc.throughput;
    const q = Object.values(doc.queues);
    const dead = q.reduce((n, x) => n + x.dead, 0);
    document.getElementById("rates").replaceChildren(
      card("completed / hour", t.completed_last_hour),
      card("per minute", t.per_minute),
      card("failure rate (1 h)", (t.failure_rate * 100).toFixed(1) + "%", t.failure_rate > 0.05 ? "bad" : ""),
      card("oldest pending", duration(doc.pending.oldest_age_s)),
      card("throttled", doc.pending.throttled),
      card("dead letters", dead, dead ? "bad" : ""),
      card("events dead", (doc.events || {}).dead || 0, (doc.events || {}).dead ? "bad" : ""));
    fill("in-flight", doc.in_flight.map((r) => row([
      link("/console/renders/" + encodeURIComponent(r.id), r.id), r.user_id, r.composition,
      bar(r.progress), duration(r.age_s)])), "nothing rendering", 5);
    const hidden = (doc.counts.rendering || 0) - doc.in_flight.length;
    document.getElementById("in-flight-more").textContent = hidden > 0 ? "… and " + hidden + " more rendering" : "";
    fill("pools", doc.lambda_budget.pools.map((p) => row([
      p.name, p.in_use, p.effective < p.configured ? p.effective + " (throttled)" : p.effective, p.configured])), "no pool", 4);
    document.getElementById("budget-waiting").textContent = doc.lambda_budget.waiting + " render(s) waiting for room";
    fill("queues", Object.entries(doc.queues).map(([name, x]) => row([
      name, x.ready, x.delayed, x.unacked, el("span", x.dead, x.dead ? "bad" : "")])), "no queue", 5);
    fill("throttled", doc.throttled_users.map((u) => row([
      u.user_id, u.waiting,
      u.next_start_at ? u.next_start_at.slice(11, 19) + " UTC (in " + duration((Date.parse(u.next_start_at) - now) / 1000) + ")" : "-"])),
      "no user is waiting on a rate limit", 3);
    const paused = (doc.pauses || { active: [], held: 0 });
    const items = paused.active.map((p) => el("li",
      (p.user_id === null ? "everything" : "user " + p.user_id) + " paused by " + p.by + (p.reason ? ": " + p.reason : "")));
    if (paused.held) items.push(el("li", paused.held + " render(s) held until resumed", "dim"));
    document.getElementById("pauses").replaceChildren(...(items.length ? items : [el("li", "nothing is paused", "dim")]));
    fill("workers", doc.workers.map((w) => row([
      w.worker_id, (w.queues || []).join(", "), w.threads || "-",
      duration(now / 1000 - Number(w.seen_at || now / 1000)) + " ago"])), "no live worker heartbeat", 4);
    const sweep = doc.last_sweep;
    document.getElementById("sweep").textContent = sweep
      ? sweep.duration_s + " s for " + sweep.renders + " renders (" + sweep.polled + " polled), " +
        duration(now / 1000 - Number(sweep.finished_at)) + " ago"
      : "none recorded (is the scheduler running?)";
    const failures = Object.entries(doc.failures_last_hour).map(([code, n]) => el("li", code + ": " + n));
    document.getElementById("failures").replaceChildren(...(failures.length ? failures : [el("li", "none", "dim")]));
  }

  function drawRender(doc) {
    const status = document.getElementById("render-status");
    status.textContent = doc.status;
    status.className = "value status status-" + doc.status;
    document.getElementById("render-progress").value = doc.progress;
    document.getElementById("render-percent").textContent = Math.round(doc.progress * 100) + "%";
    const paused = document.getElementById("render-paused");
    paused.hidden = !doc.paused;
    paused.textContent = doc.paused ? "Waiting: " + doc.paused : "";
    // A new status or attempt changes more than these fields (timeline, actions): reload.
    if (doc.status !== main.dataset.status || String(doc.attempts) !== main.dataset.attempts) {
      window.location.reload();
    }
  }

  const draw = main.id === "overview" ? drawOverview : drawRender;
  const problem = document.getElementById("feed-error");
  async function tick() {
    try {
      const answer = await fetch(main.dataset.feed, { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) { window.location.href = "/console/login"; return; }
      if (!answer.ok) throw new Error("feed answered " + answer.status);
      draw(await answer.json());
      if (problem) problem.hidden = true;
    } catch (err) {
      if (problem) { problem.hidden = false; problem.textContent = "refresh failed: " + err.message; }
    }
    setTimeout(tick, every);
  }
  tick();
})();
