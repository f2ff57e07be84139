#include "server/web_page.h"

namespace diffuse::server {

namespace {

const char* const kPage = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>diffuse</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #16181d; color: #e6e6e6; }
  header { padding: 10px 18px; background: #20232a; font-weight: 600; }
  main { display: grid; grid-template-columns: minmax(280px, 380px) 1fr; gap: 18px; padding: 18px; }
  label { display: block; margin: 8px 0 2px; color: #aab; font-size: 13px; }
  textarea, input, select, button { width: 100%; box-sizing: border-box; background: #0f1115; color: #eee;
    border: 1px solid #3a3f4b; border-radius: 4px; padding: 6px; font: inherit; }
  textarea { height: 70px; resize: vertical; }
  .row { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
  .check { display: flex; align-items: center; gap: 6px; margin-top: 6px; }
  .check input { width: auto; }
  button { margin-top: 12px; cursor: pointer; background: #3b5bdb; border: none; padding: 9px; font-weight: 600; }
  button.secondary { background: #444b5a; }
  button:disabled { opacity: .5; cursor: default; }
  #progress { height: 6px; background: #2a2e37; border-radius: 3px; margin-top: 12px; overflow: hidden; }
  #bar { height: 100%; width: 0; background: #51cf66; transition: width .2s; }
  #status { font-size: 13px; color: #aab; margin-top: 6px; min-height: 1.4em; }
  #error { color: #ff8787; white-space: pre-wrap; }
  #preview { width: 256px; height: 256px; image-rendering: pixelated; background: #0f1115; border-radius: 4px; display: block; }
  #gallery { display: flex; flex-wrap: wrap; gap: 14px; margin-top: 16px; }
  figure { margin: 0; width: 256px; }
  figure img { width: 256px; border-radius: 4px; display: block; }
  figcaption { font-size: 11px; color: #99a; white-space: pre-wrap; word-break: break-word; margin-top: 4px; }
</style>
</head>
<body>
<header>diffuse</header>
<main>
<form id="form">
  <label for="prompt">Prompt</label>
  <textarea id="prompt" name="prompt">a red circle on a blue background</textarea>
  <label for="negative_prompt">Negative prompt</label>
  <textarea id="negative_prompt" name="negative_prompt"></textarea>
  <div class="row">
    <div><label for="width">Width</label><input id="width" type="number" min="8" step="8" placeholder="model's size"></div>
    <div><label for="height">Height</label><input id="height" type="number" min="8" step="8" placeholder="model's size"></div>
  </div>
  <div class="row">
    <div><label for="steps">Steps</label><input id="steps" type="number" min="1" value="20"></div>
    <div><label for="cfg_scale">CFG scale</label><input id="cfg_scale" type="number" min="0" step="0.5" value="7"></div>
  </div>
  <label for="preset">Preset</label>
  <select id="preset"><option value="">none</option></select>
  <label for="sampler">Sampler</label>
  <select id="sampler"></select>
  <div class="row">
    <div><label for="seed">Seed</label><input id="seed" type="number" min="0" value="42"></div>
    <div><label for="batch">Images</label><input id="batch" type="number" min="1" max="16" value="1"></div>
  </div>
  <div class="check"><input id="random_seed" type="checkbox"><label for="random_seed" style="margin:0">random seed</label></div>
  <button id="generate" type="submit">Generate</button>
  <button id="interrupt" type="button" class="secondary" disabled>Interrupt</button>
  <div id="progress"><div id="bar"></div></div>
  <div id="status"></div>
  <div id="error"></div>
</form>
<section>
  <img id="preview" alt="live preview">
  <div id="gallery"></div>
</section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let current = null;

fetch("/sdapi/v1/samplers").then((r) => r.json()).then((samplers) => {
  for (const s of samplers) {
    const option = document.createElement("option");
    option.value = option.textContent = s.name;
    $("sampler").appendChild(option);
  }
});

// A preset fills in the fields it sets, where they can still be changed; the payload names it too, for
// what the form has no field for (SD-Turbo's trailing timestep spacing).
let presets = [];
fetch("/diffuse/v1/presets").then((r) => r.json()).then((list) => {
  presets = list;
  for (const p of list) {
    const option = document.createElement("option");
    option.value = option.textContent = p.name;
    option.title = p.description;
    $("preset").appendChild(option);
  }
});
$("preset").addEventListener("change", () => {
  const p = presets.find((x) => x.name === $("preset").value);
  if (!p) return;
  $("steps").value = p.steps;
  $("cfg_scale").value = p.cfg_scale;
  $("sampler").value = p.sampler_name;
});

function payload() {
  const body = {
    prompt: $("prompt").value, negative_prompt: $("negative_prompt").value,
    steps: Number($("steps").value), cfg_scale: Number($("cfg_scale").value),
    sampler_name: $("sampler").value, n_iter: Number($("batch").value),
    seed: $("random_seed").checked ? -1 : Number($("seed").value),
  };
  if ($("preset").value) body.preset = $("preset").value;
  if ($("width").value) body.width = Number($("width").value);
  if ($("height").value) body.height = Number($("height").value);
  return body;
}

function addToGallery(result) {
  const info = JSON.parse(result.info);
  result.images.forEach((image, i) => {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.src = "data:image/png;base64," + image;
    img.className = "result";
    const caption = document.createElement("figcaption");
    caption.textContent = info.infotexts[i];
    figure.append(img, caption);
    $("gallery").prepend(figure);
  });
}

async function poll(id) {
  while (current === id) {
    const response = await fetch("/diffuse/v1/jobs/" + id);
    const job = await response.json();
    if (job.progress) {
      $("bar").style.width = (100 * job.progress.fraction).toFixed(1) + "%";
      const eta = job.progress.eta_seconds >= 0 ? ", " + job.progress.eta_seconds.toFixed(1) + " s left" : "";
      $("status").textContent = "image " + (job.progress.image + 1) + "/" + job.progress.images +
        ", step " + job.progress.step + "/" + job.progress.steps + eta;
    } else if (job.state === "queued") {
      $("status").textContent = "waiting: " + job.ahead + " job(s) ahead";
    }
    if (job.preview) $("preview").src = "data:image/png;base64," + job.preview;
    if (job.state === "done" || job.state === "interrupted") {
      addToGallery(job.result);
      $("bar").style.width = "100%";
      $("status").textContent = job.state === "done" ? "done" : "interrupted";
      break;
    }
    if (job.state === "failed" || job.state === "unknown") {
      $("error").textContent = job.error || "the job was lost";
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  if (current === id) finish();
}

function finish() {
  current = null;
  $("generate").disabled = false;
  $("interrupt").disabled = true;
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").textContent = "";
  $("bar").style.width = "0";
  $("generate").disabled = true;
  const response = await fetch("/diffuse/v1/jobs", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(Object.assign({kind: "txt2img"}, payload())),
  });
  const body = await response.json();
  if (!response.ok) {
    $("error").textContent = body.detail || body.error;
    finish();
    return;
  }
  current = body.id;
  $("interrupt").disabled = false;
  poll(body.id);
});

$("interrupt").addEventListener("click", () => {
  if (current) fetch("/diffuse/v1/jobs/" + current + "/interrupt", {method: "POST"});
});
</script>
</body>
</html>
)PAGE";

}  // namespace

const std::string& web_page() {
  static const std::string page(kPage);
  return page;
}

}  // namespace diffuse::server
