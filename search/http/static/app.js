// The page at `/`: one form -> POST /v1/search -> the hits. Plain JS, no build step, no libraries.
"use strict";

const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api_key").value.trim();
  if (key) { h["Authorization"] = "Bearer " + key; }
  return h;
}

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    return body.detail || resp.statusText;
  } catch (e) {
    return resp.status + " " + resp.statusText;
  }
}

async function loadCollection() {
  const resp = await fetch("/v1/collection", { headers: headers() });
  if (!resp.ok) {
    $("collection").textContent = "collection: " + (await errorText(resp));
    return;
  }
  const info = await resp.json();
  $("collection").textContent = `${info.collection} · ESCO ${info.esco_version || "?"} · ${info.count} points · ` +
    `model ${info.model || "?"}` + (info.threshold !== null ? ` · default threshold ${info.threshold}` : "");
  const select = $("language");
  for (const lang of info.languages || []) {
    if (![...select.options].some((o) => o.value === lang)) {
      select.add(new Option(lang, lang));
    }
  }
}

function request() {
  const body = { text: $("text").value };
  for (const name of ["skill_type", "reuse_level", "language"]) {
    const v = $(name).value;
    if (v) { body[name] = v; }
  }
  const thr = $("threshold").value.trim();
  if (thr !== "") { body.threshold = Number(thr); }
  const lim = $("limit").value.trim();
  if (lim !== "") { body.limit = Number(lim); }
  return body;
}

function hitItem(hit) {
  const li = document.createElement("li");
  li.className = "hit";
  const head = document.createElement("div");
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = hit.score.toFixed(3);
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = hit.preferred_label;
  head.append(score, label);
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = [hit.skill_type, hit.reuse_level, hit.language, hit.esco_version && "ESCO " + hit.esco_version]
    .filter(Boolean).join(" · ");
  const desc = document.createElement("p");
  desc.className = "description";
  desc.textContent = hit.description;
  const uri = document.createElement("a");
  uri.className = "uri";
  uri.href = hit.concept_uri;
  uri.rel = "noopener noreferrer";
  uri.textContent = hit.concept_uri;
  li.append(head, meta, desc, uri);
  return li;
}

async function search(event) {
  event.preventDefault();
  const list = $("hits");
  setStatus("searching…", false);
  $("search-button").disabled = true;
  try {
    const started = performance.now();
    const resp = await fetch("/v1/search", { method: "POST", headers: headers(), body: JSON.stringify(request()) });
    if (!resp.ok) {
      list.replaceChildren();
      setStatus(await errorText(resp), true);
      return;
    }
    const hits = await resp.json();
    list.replaceChildren(...hits.map(hitItem));
    const ms = Math.round(performance.now() - started);
    setStatus(hits.length ? `${hits.length} skills (${ms} ms)` : "no skill matches (threshold and filters)", false);
  } catch (e) {
    setStatus("the service cannot be reached: " + e, true);
  } finally {
    $("search-button").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", search);
  $("api_key").addEventListener("change", loadCollection);
  loadCollection();
});
