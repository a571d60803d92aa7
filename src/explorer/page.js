// dpop-gateway decision explorer. Every string from a decision (proof and token claims are
// written by whoever sent the request) goes into the page with textContent, never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const open = new Set();
  let shown = "";

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function query() {
    const p = new URLSearchParams();
    for (const [k, id] of [["outcome", "f-outcome"], ["reason", "f-reason"], ["jkt", "f-jkt"]]) {
      const v = $(id).value.trim();
      if (v) p.set(k, v);
    }
    return p.toString();
  }

  function pretty(v) {
    return JSON.stringify(v, null, 2);
  }

  function checksTable(checks) {
    const t = el("table", "checks");
    const head = el("tr");
    for (const h of ["check", "result", "expected", "actual"]) head.appendChild(el("th", null, h));
    t.appendChild(head);
    for (const c of checks) {
      const tr = el("tr", "check " + c.status);
      tr.dataset.check = c.name;
      tr.appendChild(el("td", "name", c.name));
      tr.appendChild(el("td", "st", c.status.replace("_", " ")));
      tr.appendChild(el("td", "v expected", c.expected));
      tr.appendChild(el("td", "v actual", c.actual));
      t.appendChild(tr);
    }
    return t;
  }

  function pane(title, decoded) {
    const d = el("div", "pane");
    d.appendChild(el("h3", null, title));
    if (!decoded) {
      d.appendChild(el("p", "meta", "none, or not a JWT"));
      return d;
    }
    d.appendChild(el("p", "meta", "header"));
    d.appendChild(el("pre", "header", pretty(decoded.header)));
    d.appendChild(el("p", "meta", "claims"));
    d.appendChild(el("pre", "claims", pretty(decoded.claims)));
    d.appendChild(el("p", "meta", "signature: not kept"));
    return d;
  }

  function decision(r) {
    const ok = r.outcome === "forwarded";
    const d = el("details", "decision" + (ok ? " ok" : r.outcome === "local" ? " local" : ""));
    d.dataset.id = r.id;
    d.dataset.outcome = r.outcome;
    d.dataset.reason = r.reason;
    if (open.has(r.id)) d.open = true;
    d.addEventListener("toggle", () => (d.open ? open.add(r.id) : open.delete(r.id)));
    const s = el("summary");
    s.appendChild(el("span", "status", r.status));
    s.appendChild(el("span", "reqline", r.method + " " + r.path));
    s.appendChild(el("span", "route", "route " + r.route));
    s.appendChild(el("span", "outcome", r.outcome));
    if (r.reason !== "none") s.appendChild(el("span", "failed", "failed: " + r.reason));
    const when = new Date(r.at * 1000).toISOString().replace("T", " ").replace(".000Z", "Z");
    s.appendChild(el("span", "time", when + " · " + (r.duration_us / 1000).toFixed(2) + " ms"));
    d.appendChild(s);

    const b = el("div", "body");
    if (r.description) b.appendChild(el("p", "desc", r.description));
    const meta = el("p", "meta");
    meta.appendChild(el("span", null, "#" + r.id + " · proof key "));
    if (r.jkt) {
      const a = el("a", "jkt", r.jkt);
      a.title = "show only this key";
      a.addEventListener("click", () => {
        $("f-jkt").value = r.jkt;
        refresh(true);
      });
      meta.appendChild(a);
      meta.appendChild(el("span", null, r.jkt_verified ? " (signature verified)" : " (not verified)"));
    } else {
      meta.appendChild(el("span", null, "none"));
    }
    if (r.upstream_us !== null && r.upstream_us !== undefined) {
      meta.appendChild(el("span", null, " · upstream " + (r.upstream_us / 1000).toFixed(2) + " ms"));
    }
    b.appendChild(meta);
    if (r.checks.length) b.appendChild(checksTable(r.checks));
    const panes = el("div", "panes");
    panes.appendChild(pane("DPoP proof", r.proof));
    panes.appendChild(pane("Access token (the token itself is never kept)", r.token));
    b.appendChild(panes);
    d.appendChild(b);
    return d;
  }

  async function refresh(force) {
    const q = query();
    let doc;
    try {
      const resp = await fetch("/explorer/decisions.json" + (q ? "?" + q : ""), { cache: "no-store" });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      doc = await resp.json();
    } catch (e) {
      $("status").textContent = "cannot load decisions: " + e.message;
      return;
    }
    const key = q + "|" + doc.decisions.map((r) => r.id).join(",");
    const main = $("decisions");
    if (force || key !== shown) {
      shown = key;
      main.replaceChildren();
      if (!doc.decisions.length) main.appendChild(el("p", "empty", "No decisions match."));
      for (const r of doc.decisions) main.appendChild(decision(r));
    }
    $("status").textContent =
      doc.decisions.length + " shown (keeps the last " + doc.capacity + ") · updated " +
      new Date().toLocaleTimeString();
    document.body.dataset.loaded = "1";
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const id of ["f-outcome", "f-reason", "f-jkt"]) {
      $(id).addEventListener("input", () => refresh(true));
    }
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    $("f-clear").addEventListener("click", () => {
      for (const id of ["f-outcome", "f-reason", "f-jkt"]) $(id).value = "";
      refresh(true);
    });
    refresh(true);
    setInterval(() => refresh(false), 2000);
  });
})();
