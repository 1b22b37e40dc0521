// The session inspector page: plain DOM, no build step, no inline script (strict CSP).
// Views: the session list (`/?agent=…&status=…&cwd=…&q=…`) and one session
// (`/?session=ID`, optionally `&q=` to search it). Both are links to share on this machine.
"use strict";

const main = document.getElementById("main");
const key = localStorage.getItem("inspectorKey") || "";
let me = null;
let following = null; // AbortController of the live stream

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, options = {}) {
  const headers = { "X-Inspector-Key": key, ...(options.headers || {}) };
  const r = await fetch("/inspector/api/" + path, { ...options, headers, credentials: "same-origin" });
  if (r.status === 401) throw new LoginNeeded();
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

class LoginNeeded extends Error {}

function post(path, body) {
  return api(path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

function owner(o) {
  if (!o) return h("span", { class: "muted" }, "none");
  const where = `pid ${o.pid}` + (o.local ? "" : ` on ${o.host}`);
  const tag = o.here ? "this daemon" : o.alive ? "another daemon" : "gone";
  return h("span", { class: o.alive ? "" : "muted", title: o.url || "" }, `${where} · ${tag}`);
}

function cost(c) {
  return typeof c === "number" ? `$${c.toFixed(4)}` : "—";
}

function go(params) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  history.pushState(null, "", "/" + (q.toString() ? "?" + q : ""));
  route();
}

window.addEventListener("popstate", route);

async function route() {
  if (following) following.abort();
  following = null;
  const params = new URLSearchParams(location.search);
  try {
    if (!me) {
      me = await api("me");
      document.getElementById("access").textContent = me.access === "full" ? "full access" : "read-only";
    }
    if (params.get("session")) await showSession(params.get("session"), params.get("q") || "");
    else await showList(params);
  } catch (e) {
    main.replaceChildren(
      e instanceof LoginNeeded
        ? h("div", { class: "login", "data-testid": "login-needed" },
            h("h2", {}, "Not logged in"),
            h("p", {}, "Run ", h("code", {}, "agent-bridge inspect"), " on this machine and open the link it prints."))
        : h("p", { class: "error" }, String(e.message || e)),
    );
  }
}

// -- the session list ------------------------------------------------------------------------
async function showList(params) {
  const filters = {};
  for (const k of ["agent", "status", "cwd", "q"]) if (params.get(k)) filters[k] = params.get(k);
  const data = await api("sessions?" + new URLSearchParams(filters));
  const select = (name, values) =>
    h("select", { name, "data-testid": `filter-${name}` }, h("option", { value: "" }, `any ${name}`),
      values.map((v) => h("option", { value: v, selected: filters[name] === v }, v)));
  const form = h("form", { class: "filters", onsubmit: (ev) => {
    ev.preventDefault();
    go(Object.fromEntries(new FormData(form)));
  } },
    select("agent", data.agents), select("status", data.statuses),
    h("input", { name: "cwd", placeholder: "directory contains…", value: filters.cwd || "" }),
    h("input", { name: "q", placeholder: "title or id…", value: filters.q || "", "data-testid": "filter-q" }),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("change", () => go(Object.fromEntries(new FormData(form))));
  const rows = data.sessions.map((s) =>
    h("tr", { class: "session", "data-testid": "session-row", "data-id": s.id },
      h("td", {}, h("a", { href: `/?session=${encodeURIComponent(s.id)}`, onclick: (ev) => {
        ev.preventDefault();
        go({ session: s.id });
      } }, s.title || s.id), s.title ? h("div", { class: "muted small" }, s.id) : null),
      h("td", {}, s.agent),
      h("td", { class: "path" }, s.cwd),
      h("td", {}, h("span", { class: `status ${s.status}` }, s.turnActive ? "busy" : s.status),
        s.pendingPermissions ? h("span", { class: "badge" }, `${s.pendingPermissions} asking`) : null),
      h("td", {}, owner(s.owner)),
      h("td", { class: "num" }, cost(s.cost)),
      h("td", { title: s.updatedAt }, ago(s.updatedAt))));
  main.replaceChildren(
    h("h1", {}, "Sessions ", h("span", { class: "muted small" }, `${data.sessions.length} of ${data.total}`)),
    form,
    h("table", { class: "sessions" },
      h("thead", {}, h("tr", {}, ["Session", "Agent", "Directory", "Status", "Owner", "Cost", "Last activity"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No sessions match.")))));
}

// -- one session -----------------------------------------------------------------------------
async function showSession(sid, q) {
  const state = await api(`sessions/${encodeURIComponent(sid)}`);
  const header = h("div", { class: "session-head" });
  const pending = h("div", { class: "pending", "data-testid": "pending" });
  const timeline = h("ol", { class: "timeline", "data-testid": "timeline" });
  const hits = h("div", { class: "hits" });
  const search = h("form", { class: "search", onsubmit: async (ev) => {
    ev.preventDefault();
    const text = new FormData(search).get("q");
    history.replaceState(null, "", `/?session=${encodeURIComponent(sid)}` + (text ? `&q=${encodeURIComponent(text)}` : ""));
    await runSearch(sid, text, hits, view);
  } }, h("input", { name: "q", placeholder: "search this session…", value: q, "data-testid": "search" }), h("button", {}, "Search"));
  main.replaceChildren(
    h("p", {}, h("a", { href: "/", onclick: (ev) => { ev.preventDefault(); go({}); } }, "← all sessions")),
    header, pending, search, hits, timeline);
  const view = new Timeline(timeline);
  const render = (st) => {
    renderHead(header, st.session);
    renderPending(pending, sid, st);
  };
  render(state);
  if (q) follow.first = () => runSearch(sid, q, hits, view);
  follow(sid, view, render);
}

function renderHead(el, s) {
  const canCancel = me.access === "full" && s.controllable && s.turnActive;
  el.replaceChildren(
    h("h1", {}, s.title || s.id),
    h("dl", {},
      h("dt", {}, "Id"), h("dd", {}, s.id),
      h("dt", {}, "Agent"), h("dd", {}, s.agent),
      h("dt", {}, "Directory"), h("dd", { class: "path" }, s.cwd),
      h("dt", {}, "Status"), h("dd", { "data-testid": "status" }, s.turnActive ? "busy (turn running)" : s.status),
      h("dt", {}, "Owner"), h("dd", {}, owner(s.owner)),
      h("dt", {}, "Cost"), h("dd", { "data-testid": "cost" }, cost(s.cost)),
      h("dt", {}, "Last activity"), h("dd", { title: s.updatedAt }, ago(s.updatedAt))),
    ...(canCancel ? [h("button", { class: "danger", "data-testid": "cancel", onclick: (ev) => {
      ev.target.disabled = true;
      post(`sessions/${encodeURIComponent(s.id)}/cancel`, {}).catch((e) => alert(e.message));
    } }, "Cancel the turn")] : []));
}

function renderPending(el, sid, st) {
  const can = me.access === "full" && st.session.controllable;
  el.replaceChildren(...st.pending.map((p) =>
    h("div", { class: "permission-ask", "data-testid": "permission" },
      h("strong", {}, "Permission asked: "), (p.toolCall && (p.toolCall.title || p.toolCall.toolCallId)) || "a tool call",
      h("div", { class: "options" },
        (p.options || []).map((o) => h("button", {
          disabled: !can, "data-option": o.optionId, class: o.kind && o.kind.startsWith("allow") ? "allow" : "",
          onclick: () => post(`sessions/${encodeURIComponent(sid)}/permission`, { index: p.index, optionId: o.optionId })
            .catch((e) => alert(e.message)),
        }, o.name || o.optionId)),
        can ? null : h("span", { class: "muted small" }, " (read-only)")))));
}

async function runSearch(sid, q, el, view) {
  document.querySelectorAll(".timeline li.match").forEach((li) => li.classList.remove("match"));
  if (!q) return el.replaceChildren();
  const data = await api(`sessions/${encodeURIComponent(sid)}/search?q=${encodeURIComponent(q)}`);
  el.replaceChildren(h("p", { "data-testid": "hits" }, `${data.events.length} match${data.events.length === 1 ? "" : "es"} for “${q}”: `,
    data.events.map((e) => h("a", { href: `#seq-${e.seq}`, class: "hit", onclick: (ev) => {
      ev.preventDefault();
      view.find(e.seq)?.scrollIntoView({ block: "center" });
    } }, `#${e.seq}`))));
  document.querySelectorAll(".timeline li.match").forEach((li) => li.classList.remove("match"));
  for (const e of data.events) view.find(e.seq)?.classList.add("match");
}

async function follow(sid, view, render) {
  const ctl = new AbortController();
  following = ctl;
  let after = 0;
  while (!ctl.signal.aborted) {
    try {
      const r = await fetch(`/inspector/api/sessions/${encodeURIComponent(sid)}/stream?after=${after}`,
        { headers: { "X-Inspector-Key": key }, signal: ctl.signal });
      if (!r.ok) throw new Error(`stream: ${r.status}`);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("");
          if (!data) continue;
          const msg = JSON.parse(data);
          for (const e of msg.events) { view.add(e); after = e.seq; }
          render(msg.state);
          if (follow.first) { follow.first(); follow.first = null; } // a shared search link
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    await new Promise((ok) => setTimeout(ok, 2000)); // the daemon went away: try again
  }
}

// -- the timeline: the log rows as messages, thoughts, tool calls, permissions, plans --------
class Timeline {
  constructor(el) {
    this.el = el;
    this.tools = new Map();
    this.last = null; // the open message or thought block chunks are appended to
    this.bySeq = new Map(); // every log row's item (merged chunks share their block's)
  }

  find(seq) {
    return this.bySeq.get(seq);
  }

  item(e, cls, ...children) {
    const li = h("li", { id: `seq-${e.seq}`, class: cls, title: `#${e.seq} ${e.at}` }, ...children);
    this.el.append(li);
    return li;
  }

  add(e) {
    const li = this.render(e);
    if (li) this.bySeq.set(e.seq, li);
  }

  render(e) {
    const m = e.message || {};
    if (m.method === "session/update" && m.params) return this.update(e, m.params.update || {});
    this.last = null;
    if (m.method === "session/prompt" && m.params) {
      const text = (m.params.prompt || []).map((b) => b.text || `[${b.type}]`).join(" ");
      return this.item(e, "user", h("span", { class: "who" }, "user"), h("div", { class: "text" }, text));
    }
    if (m.method === "session/request_permission" && m.params && !("result" in m)) {
      const opts = (m.params.options || []).map((o) => o.name || o.optionId).join(" / ");
      return this.item(e, "permission", h("span", { class: "who" }, "permission asked"), ` ${opts}`);
    }
    if (m.method === "session/request_permission" && m.result) {
      const o = m.result.outcome || {};
      return this.item(e, "permission", h("span", { class: "who" }, "answered"), ` ${o.optionId || o.outcome}`);
    }
    if (m.method === "session/cancel") return this.item(e, "system", "cancel requested");
    if (m.bridge) {
      const b = m.bridge;
      const by = b.resolvedBy ? ` by ${b.resolvedBy.name || b.resolvedBy.connection}` : "";
      return this.item(e, b.type === "permission_resolved" ? "permission system" : "system",
        `${b.type.replaceAll("_", " ")}${by}`);
    }
    if (m.result && m.result.stopReason) {
      const u = m.result.usage;
      return this.item(e, "system", `turn ended: ${m.result.stopReason}` + (u ? ` · ${u.totalTokens ?? "?"} tokens` : ""));
    }
    if (m.method && m.method.startsWith("session/")) return this.item(e, "system", m.method.slice(8).replaceAll("_", " "));
    if (m.error) return this.item(e, "system error", `error: ${m.error.message}`);
    return null;
  }

  update(e, u) {
    const kind = u.sessionUpdate;
    if (kind === "agent_message_chunk" || kind === "agent_thought_chunk" || kind === "user_message_chunk") {
      const cls = kind === "agent_thought_chunk" ? "thought" : kind === "user_message_chunk" ? "user" : "agent";
      const text = u.content && u.content.type === "text" ? u.content.text : `[${u.content && u.content.type}]`;
      if (this.last && this.last.cls === cls) {
        this.last.text.append(text);
        return this.last.li;
      }
      const body = h("div", { class: "text" }, text);
      const li = this.item(e, cls, h("span", { class: "who" }, cls === "thought" ? "thinking" : cls), body);
      this.last = { cls, li, text: body };
      return li;
    }
    this.last = null;
    if (kind === "tool_call" || kind === "tool_call_update") return this.tool(e, u);
    if (kind === "plan") {
      return this.item(e, "plan", h("span", { class: "who" }, "plan"),
        h("ul", {}, (u.entries || []).map((p) => h("li", { class: `plan-${p.status}` }, `${p.content} (${p.status})`))));
    }
    if (kind === "usage_update") {
      const c = u.cost ? ` · $${Number(u.cost.amount).toFixed(4)}` : "";
      return this.item(e, "system", `usage: ${u.used ?? "?"} of ${u.size ?? "?"} tokens${c}`);
    }
    return this.item(e, "system small", kind ? kind.replaceAll("_", " ") : "update");
  }

  tool(e, u) {
    let card = this.tools.get(u.toolCallId);
    if (!card) {
      const title = h("span", { class: "tool-title" });
      const status = h("span", { class: "status" });
      const body = h("div", { class: "tool-body" });
      const li = this.item(e, "tool", h("span", { class: "who" }, "tool"), title, " ", status, body);
      li.dataset.testid = "tool-call";
      card = { li, title, status, body, data: {} };
      this.tools.set(u.toolCallId, card);
    }
    Object.assign(card.data, Object.fromEntries(Object.entries(u).filter(([, v]) => v !== null && v !== undefined)));
    const d = card.data;
    card.title.textContent = d.title || d.kind || u.toolCallId;
    card.status.textContent = d.status || "";
    card.status.className = `status ${d.status || ""}`;
    const parts = [];
    for (const c of d.content || []) {
      if (c.type === "diff") {
        parts.push(h("div", { class: "diff" }, h("div", { class: "path" }, c.path),
          c.oldText ? h("pre", { class: "old" }, c.oldText) : null, h("pre", { class: "new" }, c.newText)));
      } else if (c.type === "content" && c.content && c.content.type === "text") {
        parts.push(h("pre", { class: "out" }, c.content.text));
      } else if (c.type === "terminal") {
        parts.push(h("div", { class: "muted small" }, `terminal ${c.terminalId}`));
      }
    }
    if (d.rawOutput !== undefined && !(d.content || []).length) {
      parts.push(h("pre", { class: "out" }, typeof d.rawOutput === "string" ? d.rawOutput : JSON.stringify(d.rawOutput, null, 2)));
    }
    card.body.replaceChildren(...parts);
    return card.li;
  }
}

route();
