// The SEAL server's web page: plain fetch against the server's own API, no build step, no dependencies.
"use strict";

const KEY_STORE = "seal-api-key";
const TERMINAL = new Set(["done", "failed", "rejected"]);
const $ = (id) => document.getElementById(id);

const state = {
  history: [],          // chat messages sent so far: [{role, content}]
  liveVersion: null,
  lastDoc: null,        // the document learned last on this page (from /v1/documents)
  models: [],
};

// ------------------------------------------------------------------------------------------- API

function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const k = apiKey();
  if (k) h["Authorization"] = "Bearer " + k;
  return h;
}

class ApiError extends Error {
  constructor(message, status, type, code) { super(message); this.status = status; this.type = type; this.code = code; }
}

async function errorFrom(resp) {
  let message = `${resp.status} ${resp.statusText || "error"}`, type = "", code = "";
  try {
    const body = await resp.json();
    const e = body && (body.error || body.detail);
    if (e && typeof e === "object" && !Array.isArray(e)) {
      message = e.message || message; type = e.type || ""; code = e.code || "";
    } else if (typeof e === "string") {
      message = e;
    } else if (Array.isArray(e) && e.length) {       // a FastAPI validation list
      message = e.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    }
  } catch (_) { /* not JSON: keep the status line */ }
  if (resp.status === 401 && !apiKey()) message += " (enter the API key above)";
  return new ApiError(message, resp.status, type, code);
}

async function api(method, path, body) {
  let resp;
  try {
    resp = await fetch(path, { method, headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(`cannot reach the server (${e.message})`, 0, "network", "");
  }
  if (!resp.ok) throw await errorFrom(resp);
  if (resp.status === 204) return null;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

function listOf(body, ...keys) {
  if (Array.isArray(body)) return body;
  for (const k of ["data", ...keys]) if (body && Array.isArray(body[k])) return body[k];
  return [];
}

// ------------------------------------------------------------------------------------------- UI helpers

function showError(err) {
  const msg = err instanceof ApiError && err.code ? `${err.message} [${err.code}]` : (err.message || String(err));
  $("error-text").textContent = msg;
  $("error").hidden = false;
}
function clearError() { $("error").hidden = true; $("error-text").textContent = ""; }

function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") n.className = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-") || k.startsWith("aria-")) n.setAttribute(k, v);
    else n[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) n.append(c);
  return n;
}

function when(ts) {
  if (!ts) return "";
  const d = typeof ts === "number" ? new Date(ts * (ts < 1e12 ? 1000 : 1)) : new Date(ts);
  return isNaN(d) ? String(ts) : d.toLocaleString();
}

async function guarded(fn) {
  try { return await fn(); } catch (e) { showError(e); return undefined; }
}

// ------------------------------------------------------------------------------------------- health, models

async function refreshHealth() {
  const out = $("health");
  try {
    const h = await api("GET", "/health");
    state.liveVersion = h.version ?? h.live_version ?? null;
    const queue = h.queue ?? 0;
    const busy = h.running_job ? ` · running ${h.running_job}` : "";
    out.textContent = `${h.model || "model"} · live version ${state.liveVersion ?? "none"} · queue ${queue}${busy}`;
    out.dataset.ok = "1";
  } catch (e) {
    out.textContent = `server unreachable: ${e.message}`;
    out.dataset.ok = "";
  }
}

async function refreshModels() {
  const body = await api("GET", "/v1/models");
  const ids = listOf(body).map((m) => m.id).filter(Boolean);
  state.models = ids;
  const sel = $("chat-model"), keep = sel.value || "seal";
  sel.replaceChildren(...ids.map((id) => el("option", { value: id, textContent: id })));
  sel.value = ids.includes(keep) ? keep : (ids[0] || "");
}

// ------------------------------------------------------------------------------------------- chat

function addMessage(role, text, model) {
  const li = el("li", { class: `msg ${role}` },
    el("span", { class: "who", textContent: role === "user" ? "you" : (model || role) }),
    el("div", { class: "text", textContent: text }));
  $("chat-log").append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

function finishAnswer(li, text, version) {
  if (version !== undefined && version !== null) {
    li.querySelector(".who").textContent += version ? ` · v${version}` : " · base weights";
  }
  const t = li.querySelector(".text");
  t.textContent = text;
  if (!text.trim()) { t.textContent = "(the model returned an empty answer)"; li.classList.add("empty-answer"); }
  li.dataset.done = "1";
}

async function streamChat(body, li) {
  const resp = await fetch("/v1/chat/completions", { method: "POST", headers: headers(true),
    body: JSON.stringify({ ...body, stream: true }) });
  if (!resp.ok) throw await errorFrom(resp);
  const reader = resp.body.getReader(), dec = new TextDecoder();
  let buf = "", text = "";
  const out = { text: "", version: resp.headers.get("x-seal-version") };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, cut); buf = buf.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return { ...out, text };
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(chunk.error.message || "stream error", 0, chunk.error.type, chunk.error.code);
        out.version = chunk.seal_version ?? out.version;
        text += chunk.choices?.[0]?.delta?.content || "";
        li.querySelector(".text").textContent = text;
      }
    }
  }
  return { ...out, text };
}

async function complete(model, messages, maxTokens, temperature = 0) {
  const r = await api("POST", "/v1/chat/completions", { model, messages, max_tokens: maxTokens, temperature });
  return { text: r.choices?.[0]?.message?.content ?? "", version: r.seal_version };
}

async function sendChat(ev) {
  ev.preventDefault();
  const input = $("chat-input"), content = input.value.trim();
  if (!content) return;
  clearError();
  const model = $("chat-model").value || "seal";
  const maxTokens = Math.max(1, parseInt($("chat-max-tokens").value, 10) || 64);
  const temperature = Math.min(2, Math.max(0, parseFloat($("chat-temperature").value) || 0));
  state.history.push({ role: "user", content });
  addMessage("user", content);
  input.value = "";
  const li = addMessage("assistant", "…", model);
  li.setAttribute("aria-busy", "true");
  $("chat-send").disabled = true;
  try {
    const body = { model, messages: state.history, max_tokens: maxTokens, temperature };
    const r = $("chat-stream").checked ? await streamChat(body, li)
      : await complete(model, state.history, maxTokens, temperature);
    state.history.push({ role: "assistant", content: r.text });
    finishAnswer(li, r.text, r.version);
  } catch (e) {
    state.history.pop();
    li.remove();
    showError(e);
  } finally {
    li.removeAttribute("aria-busy");
    $("chat-send").disabled = false;
  }
}

// ------------------------------------------------------------------------------------------- jobs

function describeJob(job) {
  const parts = [job.status];
  const p = job.progress;
  if (job.status === "running" && p && p.total) parts.push(`${p.phase} ${p.done}/${p.total}`);
  if (job.version !== undefined && job.version !== null) parts.push(`version ${job.version}`);
  if (typeof job.seconds === "number") parts.push(`${job.seconds.toFixed(1)} s`);
  const g = job.guard;
  if (g && g.checked && typeof g.before === "number") {
    const after = g.retried ? g.after_retry : g.after;
    if (typeof after === "number") {
      parts.push(`guard: probe accuracy ${g.before.toFixed(2)} → ${after.toFixed(2)}${g.retried ? " (retried with replay)" : ""}`);
    }
  }
  let s = parts.join(" · ");
  if (job.error) s += ` — ${typeof job.error === "string" ? job.error : job.error.message || JSON.stringify(job.error)}`;
  return `${s} (${job.job_id})`;
}

async function trackJob(jobId, label, onDone) {
  const out = $("job-status");
  const started = Date.now();
  try {
    for (;;) {
      const job = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}`);
      out.textContent = `${label}: ${describeJob({ job_id: jobId, ...job })}`;
      out.dataset.status = job.status;
      if (TERMINAL.has(job.status)) {
        if (job.status !== "done") showError(new Error(`${label} ${job.status}: ${job.error || "no reason given"}`));
        await refreshAll();
        if (job.status === "done" && onDone) await onDone(job);
        return job;
      }
      const wait = Date.now() - started < 10000 ? 500 : 2000;
      await new Promise((r) => setTimeout(r, wait));
    }
  } catch (e) {
    out.textContent = `${label}: could not follow job ${jobId}: ${e.message}`;
    out.dataset.status = "error";
    showError(e);
    return null;
  }
}

// ------------------------------------------------------------------------------------------- learn

function readFile(ev) {
  const file = ev.target.files && ev.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    $("doc-text").value = String(reader.result);
    if (!$("doc-title").value) $("doc-title").value = file.name.replace(/\.[^.]+$/, "");
    // the server keeps this name when it is a plain one (letters, digits, spaces, . - _ ( )), else makes one
    $("doc-text").dataset.fileName = /^[\w .()-]+$/.test(file.name) && !file.name.startsWith(".") ? file.name : "";
  };
  reader.onerror = () => showError(new Error(`cannot read ${file.name}: ${reader.error}`));
  reader.readAsText(file);
}

async function learn(ev) {
  ev.preventDefault();
  clearError();
  const text = $("doc-text").value;
  if (!text.trim()) { showError(new Error("the document is empty: paste some text or choose a file")); return; }
  const body = { text };
  const title = $("doc-title").value.trim();
  if (title) body.title = title;
  if ($("doc-format").value) body.format = $("doc-format").value;
  if ($("doc-strategy").value) body.strategy = $("doc-strategy").value;
  if ($("doc-guard").checked) body.guard = true;
  if ($("doc-text").dataset.fileName) body.name = $("doc-text").dataset.fileName;
  const button = $("doc-learn");
  button.disabled = true;
  try {
    const r = await api("POST", "/v1/documents", body);
    const jobId = r.job_id;
    $("doc-text").dataset.fileName = "";
    $("doc-file").value = "";
    $("job-status").textContent = `Learning “${title || "untitled"}”: ${r.status || "queued"} (job ${jobId})`;
    $("job-status").dataset.status = r.status || "queued";
    refreshHealth();
    await trackJob(jobId, `Learning “${title || "untitled"}”`, (job) => afterLearn(job, title));
  } catch (e) {
    showError(e);
    $("job-status").textContent = `Not learned: ${e.message}`;
    $("job-status").dataset.status = "error";
  } finally {
    button.disabled = false;
  }
}

async function afterLearn(job, title) {
  const docs = await guarded(async () => listOf(await api("GET", "/v1/documents")));
  if (!docs || !docs.length) return;
  // the job names its document (``document``: the stored name); the newest with that name is this learn's
  const named = docs.filter((d) => d.name === job.document);
  const doc = named.pop() || docs.filter((d) => !title || d.title === title).pop() || docs[docs.length - 1];
  state.lastDoc = doc;
  explainCompare();
  await showProbes(doc);
}

// its probe questions, written by the server when it learned the document, answered by base and by seal
async function showProbes(doc) {
  clearError();
  const r = await guarded(async () => api("GET", `/v1/documents/${doc.id}/probes`));
  if (!r || !r.probes) return;
  state.lastDoc = doc;
  $("compare-title").textContent = `Probe questions of “${docLabel(doc)}” (written when it was learned)`;
  const body = $("compare-body");
  body.replaceChildren();
  $("compare").hidden = false;
  const mark = (ok) => (ok === null || ok === undefined ? "" : ok ? " ✓" : " ✗");
  for (const p of r.probes) {
    body.append(el("tr", { class: "probe" },
      el("th", { scope: "row", textContent: `${p.question} (answer: ${p.answer})` }),
      el("td", { class: "before", textContent: p.before === null ? "(base not served)"
        : (p.before.trim() || "(empty answer)") + mark(p.right_before) }),
      el("td", { class: "after", textContent: (p.after.trim() || "(empty answer)") + mark(p.right_after) })));
  }
  if (!r.probes.length) body.append(el("tr", {}, el("td", { colspan: "3", textContent: "(no probe questions)" })));
}

function explainCompare() {
  const doc = state.lastDoc;
  const what = doc ? `“${docLabel(doc)}”` : "a document you learn here";
  const note = $("compare-note");
  if (!state.models.includes("base")) {
    note.replaceChildren(`This server does not serve the base model (a merge store keeps only the live version
      in its weights), so there is no “before” to ask. Ask `, el("code", { textContent: "seal" }), " in the chat.");
    return;
  }
  note.replaceChildren(`The probe questions the server wrote when it learned ${what} are answered below by `,
    el("b", { textContent: "before" }), " = the base model and ", el("b", { textContent: "after" }),
    " = the live version (✓ = right, graded as seal grades). You can also ",
    `type your own questions about ${what}; each is asked of `, el("b", { textContent: "before" }), " = the base model (",
    el("code", { textContent: "base" }), ") and ", el("b", { textContent: "after" }), " = the live learned version (",
    el("code", { textContent: "seal" }), "), side by side, greedily.");
}

// ------------------------------------------------------------------------------------------- before / after

async function compare(ev) {
  ev.preventDefault();
  clearError();
  const qs = $("compare-questions").value.split("\n").map((q) => q.trim()).filter(Boolean);
  if (!qs.length) { showError(new Error("type at least one question")); return; }
  if (!state.models.includes("base")) { showError(new Error("this server does not serve the base model")); return; }
  const maxTokens = Math.max(1, parseInt($("chat-max-tokens").value, 10) || 64);
  const body = $("compare-body");
  body.replaceChildren();
  $("compare-title").textContent = "Your questions";
  $("compare").hidden = false;
  $("compare-ask").disabled = true;
  const show = (td, r) => {
    td.textContent = r.text.trim() || "(empty answer)";
    if (r.version) td.title = `answered by version ${r.version}`;
  };
  try {
    for (const q of qs) {
      const before = el("td", { class: "before", textContent: "…" }), after = el("td", { class: "after", textContent: "…" });
      body.append(el("tr", {}, el("th", { scope: "row", textContent: q }), before, after));
      const one = [{ role: "user", content: q }];
      const [b, a] = await Promise.all([complete("base", one, maxTokens), complete("seal", one, maxTokens)]);
      show(before, b);
      show(after, a);
    }
  } catch (e) {
    showError(e);
  } finally {
    $("compare-ask").disabled = false;
  }
}

// ------------------------------------------------------------------------------------------- documents, versions

function docLabel(d) {
  return d.title || d.name || `document ${d.id}`;
}

async function refreshDocuments() {
  const docs = listOf(await api("GET", "/v1/documents"));
  const ul = $("documents");
  if (!docs.length) { ul.replaceChildren(el("li", { class: "empty", textContent: "No documents learned." })); return; }
  ul.replaceChildren(...docs.map((d) => {
    const meta = [`#${d.id}`];
    if (d.title && d.name) meta.push(d.name);
    if (typeof d.chars === "number") meta.push(`${d.chars.toLocaleString()} chars`);
    const added = when(d.added_at);
    if (added) meta.push(added);
    return el("li", { class: "item", "data-id": String(d.id) },
      el("div", {}, el("span", { class: "name", textContent: docLabel(d) }),
        el("span", { class: "meta", textContent: meta.join(" · ") })),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "probes", textContent: "Probes",
          title: "Its probe questions (written when it was learned), answered before and after",
          "aria-label": `Probe questions of ${docLabel(d)}`, onclick: () => showProbes(d) }),
        el("button", { type: "button", class: "danger forget", textContent: "Forget",
          title: "Retrain a new version without this document (earlier versions are kept)",
          "aria-label": `Forget ${docLabel(d)}`, onclick: () => forgetDoc(d) })));
  }));
}

async function refreshVersions() {
  const body = await api("GET", "/v1/versions");
  const versions = listOf(body);
  const ul = $("versions");
  if (!versions.length) { ul.replaceChildren(el("li", { class: "empty", textContent: "No versions yet (the base model)." })); return; }
  const rows = [...versions].sort((a, b) => b.version - a.version);
  ul.replaceChildren(...rows.map((v) => {
    const n = v.version, isLive = v.live ?? n === body.live;
    const meta = [v.kind];
    if (v.document) meta.push(v.document);
    if (v.target !== undefined && v.target !== null) meta.push(`→ v${v.target}`);
    if (typeof v.final_loss === "number") meta.push(`loss ${v.final_loss.toFixed(3)}`);
    const created = when(v.created_at);
    if (created) meta.push(created);
    return el("li", { class: "item" + (isLive ? " live" : ""), "data-version": String(n) },
      el("div", {}, el("span", { class: "name", textContent: `v${n}` + (isLive ? " (live)" : "") }),
        el("span", { class: "meta", textContent: meta.filter(Boolean).join(" · ") })),
      isLive ? null : el("button", { type: "button", class: "rollback", textContent: "Rollback",
        title: `Make v${n}'s weights current again (a new version; history is kept)`,
        "aria-label": `Roll back to version ${n}`, onclick: () => rollbackTo(n) }));
  }));
}

async function forgetDoc(d) {
  clearError();
  await guarded(async () => {
    const r = await api("DELETE", `/v1/documents/${encodeURIComponent(d.id)}`);
    if (r && r.job_id) await trackJob(r.job_id, `Forgetting “${docLabel(d)}”`);
    else await refreshAll();
  });
}

async function rollbackTo(n) {
  clearError();
  await guarded(async () => {
    const r = await api("POST", `/v1/versions/${encodeURIComponent(n)}/rollback`);
    if (r && r.job_id) await trackJob(r.job_id, `Rolling back to v${n}`);
    else await refreshAll();
  });
}

async function refreshAll() {
  await refreshHealth();
  await guarded(async () => {
    await refreshModels();
    await refreshDocuments();
    await refreshVersions();
    explainCompare();
  });
}

// ------------------------------------------------------------------------------------------- wiring

function init() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const k = $("api-key").value.trim();
    if (k) sessionStorage.setItem(KEY_STORE, k); else sessionStorage.removeItem(KEY_STORE);
    clearError();
    refreshAll();
  });
  $("error-close").addEventListener("click", clearError);
  $("chat-form").addEventListener("submit", sendChat);
  $("chat-input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("chat-form").requestSubmit(); }
  });
  $("chat-clear").addEventListener("click", () => { state.history = []; $("chat-log").replaceChildren(); });
  $("learn-form").addEventListener("submit", learn);
  $("doc-file").addEventListener("change", readFile);
  $("compare-form").addEventListener("submit", compare);
  $("refresh").addEventListener("click", () => { clearError(); refreshAll(); });
  refreshAll();
  setInterval(refreshHealth, 5000);
}

document.addEventListener("DOMContentLoaded", init);
