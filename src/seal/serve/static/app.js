// The SEAL server's web page: plain fetch against the server's own API, no build step, no dependencies.
"use strict";

const KEY_STORE = "seal-api-key";
const TERMINAL = new Set(["done", "failed", "rejected"]);
const $ = (id) => document.getElementById(id);

const state = {
  history: [],          // chat messages sent so far: [{role, content}]
  liveVersion: null,
  lastDoc: null,        // {id, title} of the document learned last on this page
  expected: new Map(),  // probe question -> its stored answer, where the server gives probes
  busyJobs: new Set(),
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
    const queue = h.queue ?? h.queue_length ?? h.queued ?? 0;
    out.textContent = `${h.model || "model"} · live version ${state.liveVersion ?? "none"} · queue ${queue}`;
    out.dataset.ok = "1";
  } catch (e) {
    out.textContent = `server unreachable: ${e.message}`;
    out.dataset.ok = "";
  }
}

async function refreshModels() {
  const body = await api("GET", "/v1/models");
  const ids = listOf(body, "models").map((m) => (typeof m === "string" ? m : m.id)).filter(Boolean);
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

function finishAnswer(li, text) {
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
        if (data === "[DONE]") return text;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(chunk.error.message || "stream error", 0, chunk.error.type, chunk.error.code);
        text += chunk.choices?.[0]?.delta?.content || "";
        li.querySelector(".text").textContent = text;
      }
    }
  }
  return text;
}

async function complete(model, messages, maxTokens) {
  const r = await api("POST", "/v1/chat/completions", { model, messages, max_tokens: maxTokens, temperature: 0 });
  return r.choices?.[0]?.message?.content ?? "";
}

async function sendChat(ev) {
  ev.preventDefault();
  const input = $("chat-input"), content = input.value.trim();
  if (!content) return;
  clearError();
  const model = $("chat-model").value || "seal";
  const maxTokens = Math.max(1, parseInt($("chat-max-tokens").value, 10) || 64);
  state.history.push({ role: "user", content });
  addMessage("user", content);
  input.value = "";
  const li = addMessage("assistant", "…", model);
  li.setAttribute("aria-busy", "true");
  $("chat-send").disabled = true;
  try {
    const body = { model, messages: state.history, max_tokens: maxTokens, temperature: 0 };
    const text = $("chat-stream").checked ? await streamChat(body, li) : await complete(model, state.history, maxTokens);
    state.history.push({ role: "assistant", content: text });
    finishAnswer(li, text);
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
  if (job.version !== undefined && job.version !== null) parts.push(`version ${job.version}`);
  if (typeof job.seconds === "number") parts.push(`${job.seconds.toFixed(1)} s`);
  const g = job.guard;
  if (g && typeof g.before === "number" && typeof g.after === "number") {
    parts.push(`guard: probe accuracy ${g.before.toFixed(2)} → ${g.after.toFixed(2)}`);
  }
  let s = parts.join(" · ");
  if (job.error) s += ` — ${typeof job.error === "string" ? job.error : job.error.message || JSON.stringify(job.error)}`;
  return `${s} (job ${job.job_id || job.id})`;
}

async function trackJob(jobId, label, onDone) {
  const out = $("job-status");
  state.busyJobs.add(jobId);
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
  } finally {
    state.busyJobs.delete(jobId);
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
    const fmt = file.name.split(".").pop().toLowerCase();
    $("doc-text").dataset.fileFormat = ["md", "markdown"].includes(fmt) ? "markdown" : "text";
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
  const button = $("doc-learn");
  button.disabled = true;
  try {
    const r = await api("POST", "/v1/documents", body);
    const jobId = r.job_id || r.id;
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
  const docs = await guarded(async () => listOf(await api("GET", "/v1/documents"), "documents"));
  if (!docs || !docs.length) return;
  const id = job.document_id ?? job.document?.id;
  const doc = docs.find((d) => d.id === id) || docs.filter((d) => !title || d.title === title).pop() || docs[docs.length - 1];
  state.lastDoc = doc;
  state.expected.clear();
  let probes = doc.probes;
  if (!Array.isArray(probes)) {
    probes = await fetchProbes(doc.id);
  }
  const note = $("compare-note");
  const what = `“${doc.title || doc.name || "document " + doc.id}”`;
  if (Array.isArray(probes) && probes.length) {
    for (const p of probes) {
      const q = p.question ?? p[0], a = p.answer ?? p[1];
      if (q) state.expected.set(q, a ?? "");
    }
    $("compare-questions").value = [...state.expected.keys()].join("\n");
    note.replaceChildren(`The probe questions the server wrote for ${what} (with their expected answers), answered by `,
      el("b", { textContent: "before" }), " = the base model and ", el("b", { textContent: "after" }),
      " = the current version; both asked live by this page. Edit or add questions freely.");
  } else {
    note.replaceChildren(`The server gives no probe questions here, so type questions about ${what}: each is asked of `,
      el("b", { textContent: "before" }), " = the base model (", el("code", { textContent: "base" }), ") and ",
      el("b", { textContent: "after" }), " = the learned version (", el("code", { textContent: "seal" }),
      "), side by side, live by this page.");
  }
}

async function fetchProbes(id) {
  try {
    const body = await api("GET", `/v1/documents/${encodeURIComponent(id)}/probes`);
    return listOf(body, "probes");
  } catch (_) {
    return null;  // no such route on this server: the page falls back to the user's own questions
  }
}

// ------------------------------------------------------------------------------------------- before / after

async function compare(ev) {
  ev.preventDefault();
  clearError();
  const qs = $("compare-questions").value.split("\n").map((q) => q.trim()).filter(Boolean);
  if (!qs.length) { showError(new Error("type at least one question")); return; }
  const maxTokens = Math.max(1, parseInt($("chat-max-tokens").value, 10) || 64);
  const body = $("compare-body");
  body.replaceChildren();
  $("compare").hidden = false;
  $("compare").classList.toggle("no-expected", !qs.some((q) => state.expected.has(q)));
  $("compare-ask").disabled = true;
  try {
    for (const q of qs) {
      const before = el("td", { class: "before", textContent: "…" }), after = el("td", { class: "after", textContent: "…" });
      body.append(el("tr", {}, el("th", { scope: "row", textContent: q }),
        el("td", { class: "expected", textContent: state.expected.get(q) ?? "—" }), before, after));
      const one = [{ role: "user", content: q }];
      const [b, a] = await Promise.all([complete("base", one, maxTokens), complete("seal", one, maxTokens)]);
      before.textContent = b.trim() || "(empty)";
      after.textContent = a.trim() || "(empty)";
    }
  } catch (e) {
    showError(e);
  } finally {
    $("compare-ask").disabled = false;
  }
}

// ------------------------------------------------------------------------------------------- documents, versions

function docLabel(d) {
  return d.title || d.name || d.source || `document ${d.id}`;
}

async function refreshDocuments() {
  const docs = listOf(await api("GET", "/v1/documents"), "documents");
  const ul = $("documents");
  if (!docs.length) { ul.replaceChildren(el("li", { class: "empty", textContent: "No documents learned." })); return; }
  ul.replaceChildren(...docs.map((d) => {
    const meta = [`#${d.id}`];
    if (d.format) meta.push(d.format);
    const n = d.passages ?? d.n_passages;
    if (n !== undefined) meta.push(`${n} passage${n === 1 ? "" : "s"}`);
    if (d.version !== undefined && d.version !== null) meta.push(`learned in v${d.version}`);
    const created = when(d.created_at);
    if (created) meta.push(created);
    return el("li", { class: "item", "data-id": String(d.id) },
      el("div", {}, el("span", { class: "name", textContent: docLabel(d) }),
        el("span", { class: "meta", textContent: meta.join(" · ") })),
      el("button", { type: "button", class: "danger forget", textContent: "Forget",
        title: "Make a new version without this document (earlier versions are kept)",
        "aria-label": `Forget ${docLabel(d)}`, onclick: () => forgetDoc(d) }));
  }));
}

async function refreshVersions() {
  const versions = listOf(await api("GET", "/v1/versions"), "versions");
  const ul = $("versions");
  if (!versions.length) { ul.replaceChildren(el("li", { class: "empty", textContent: "No versions yet." })); return; }
  const live = versions.find((v) => v.live || v.current)?.id ?? state.liveVersion;
  const rows = [...versions].sort((a, b) => (b.id ?? b.version) - (a.id ?? a.version));
  ul.replaceChildren(...rows.map((v) => {
    const n = v.id ?? v.version;
    const isLive = n === live;
    const meta = [v.kind || v.note || ""];
    if (v.target !== undefined && v.target !== null) meta.push(`→ v${v.target}`);
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
    if (r && (r.job_id || (r.id && r.status))) await trackJob(r.job_id || r.id, `Forgetting “${docLabel(d)}”`);
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
