// Live updates: server-sent events from /events redraw what changed; no framework, nothing fetched elsewhere.
"use strict";
(function () {
  const live = document.querySelector("[data-live]") || document.getElementById("clusters") ||
    document.querySelector("tr[data-directive]");
  const banner = document.getElementById("broker");
  const upload = document.getElementById("directive-file");
  if (upload) {
    upload.addEventListener("change", () => {
      const file = upload.files[0];
      // Shown in the text area to read and edit; the file field is cleared so that the text is what is sent.
      if (file) file.text().then((text) => { document.getElementById("directive").value = text; upload.value = ""; });
    });
  }
  if (!live || !window.EventSource) return;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }
  const short = (digest) => digest ? el("code", { title: digest }, digest.slice(0, 12)) : "—";

  function setBanner(ok, text) {
    if (!banner) return;
    banner.dataset.ok = ok ? "true" : "false";
    banner.className = ok ? "ok" : "down";
    banner.textContent = text;
  }

  function rollout(d) {
    const section = el("section", { class: "rollout", "data-directive": d.directive_id, "aria-labelledby": "h-" + d.directive_id });
    section.append(el("h2", { id: "h-" + d.directive_id },
      el("a", { href: "/directives/" + encodeURIComponent(d.directive_id) }, d.directive_id), " ",
      el("span", { class: "sub" }, d.title)));
    const r = d.rollout;
    if (!r) {
      section.append(el("p", { class: "meta", "data-field": "meta" },
        `Revision ${d.revision} (${d.status}): awaiting its impact assessment.`));
      return section;
    }
    const meta = el("p", { class: "meta", "data-field": "meta" }, `${r.action} of revision ${r.revision} · `);
    if (r.enforced) {
      meta.append(el("strong", {}, "enforced"), " in ",
        el("span", { "data-field": "tte" }, `${(r.time_to_enforce_s || 0).toFixed(2)} s`));
    } else {
      meta.append("deadline ", el("span", { class: "countdown", "data-deadline": r.deadline || "" }, r.deadline || "none"));
    }
    meta.append(" · expected digest ", short(r.expected_digest), " (per cluster where it serves fewer models)");
    section.append(meta);
    const body = el("tbody");
    for (const [cid, p] of Object.entries(r.clusters)) {
      const state = el("td", { "data-field": "state" }, el("span", { class: "state " + p.state }, p.state));
      if (p.reason) state.append(" ", el("span", { class: "help" }, p.reason));
      const digest = el("td", { "data-field": "digest" }, short(p.digest));
      if (p.digest) digest.append(p.digest_matches ? " (as expected)" : ` (expected ${(p.expected_digest || "").slice(0, 12)})`);
      body.append(el("tr", { "data-cluster": cid }, el("th", { scope: "row" }, cid), state,
        el("td", {}, p.acked_at || "—"), digest, el("td", {}, p.attempts)));
    }
    const head = el("thead", {}, el("tr", {}, ...["Cluster", "State", "Acknowledged", "Digest held", "Attempts"]
      .map((h) => el("th", { scope: "col" }, h))));
    section.append(el("table", { class: "grid" },
      el("caption", { class: "visually-hidden" }, `Enforcement of ${d.directive_id} per cluster`), head, body));
    return section;
  }

  function summary(d) {
    const r = d.rollout;
    if (!r) return ["awaiting assessment"];
    const parts = [`${r.action} r${r.revision}: `];
    for (const [state, n] of Object.entries(r.counts)) {
      if (n) parts.push(el("span", { class: "state " + state }, `${n} ${state}`), " ");
    }
    if (r.enforced) parts.push("· enforced");
    return parts;
  }

  function onDirective(d) {
    for (const container of document.querySelectorAll("[data-live=rollouts]")) {
      const old = container.querySelector(`section[data-directive="${CSS.escape(d.directive_id)}"]`);
      if (old) old.replaceWith(rollout(d));
      else if (container.id === "rollouts") {
        container.append(rollout(d));
        const empty = document.getElementById("empty");
        if (empty) empty.remove();
      }
    }
    const row = document.querySelector(`tr[data-directive="${CSS.escape(d.directive_id)}"] [data-field=summary]`);
    if (row) row.replaceChildren(...summary(d));
  }

  function onCluster(c) {
    const row = document.querySelector(`#clusters tr[data-cluster="${CSS.escape(c.cluster_id)}"]`);
    if (!row) return;
    row.querySelector("[data-field=ready]").textContent = c.ready ? "yes" : "no";
    row.querySelector("[data-field=heartbeat]").textContent = c.last_heartbeat || "—";
    row.querySelector("[data-field=staleness]").dataset.since = c.last_heartbeat || "";
    const held = Object.entries(c.held).map(([id, h]) => `${id} r${h.revision} ${h.digest.slice(0, 12)}`);
    row.querySelector("[data-field=held]").textContent = held.join("; ") || "none";
    const a = c.acks[0];
    if (a) row.querySelector("[data-field=ack]").textContent = `${a.outcome} ${a.action} ${a.directive_id} r${a.revision} at ${a.at}`;
  }

  function tick() {
    const now = Date.now();
    for (const node of document.querySelectorAll("[data-deadline]")) {
      const at = Date.parse(node.dataset.deadline);
      if (isNaN(at)) continue;
      const left = Math.round((at - now) / 1000);
      node.textContent = left >= 0 ? `${left} s left` : `passed ${-left} s ago`;
    }
    for (const node of document.querySelectorAll("[data-since]")) {
      const at = Date.parse(node.dataset.since);
      if (!isNaN(at)) node.textContent = `${Math.max(0, Math.round((now - at) / 1000))} s`;
    }
  }
  tick();
  setInterval(tick, 1000);

  const source = new EventSource("/events");
  source.addEventListener("directive", (e) => onDirective(JSON.parse(e.data)));
  source.addEventListener("cluster", (e) => onCluster(JSON.parse(e.data)));
  source.addEventListener("broker", (e) => {
    const b = JSON.parse(e.data);
    setBanner(b.ok, b.ok ? "Live: updates arrive as they happen." :
      "The broker is unreachable: live updates are paused and resume when it is back.");
  });
  source.onerror = () => {
    setBanner(false, "Connection to the console lost: reconnecting…");
    fetch("/api/session", { credentials: "same-origin" }).then((reply) => {
      if (reply.status === 401) reply.json().then((body) => { source.close(); window.location.assign(body.login); });
    }).catch(() => {});
  };
})();
