/* Create: prompt -> POST /api/v1/generations -> long-poll GET /api/v1/generations/{id}?wait=
   -> results grid. The job id goes into the address (?job=), so a reload picks it up again. */
"use strict";

(function () {
  const { api, el, showNotice, hideNotice, showFieldErrors, clearFieldErrors, refreshCredits, count: counted } = window.ImageBooth;
  // Long-poll: the API answers as soon as the job's status or progress changes. While queued,
  // the line moves without the job changing, so the position is asked for more often.
  const WAIT_RUNNING_S = 20;
  const WAIT_QUEUED_S = 2;
  const form = document.getElementById("create-form");
  const prompt = document.getElementById("prompt");
  const count = document.getElementById("n");
  const generate = document.getElementById("generate");
  const notice = document.getElementById("notice");
  const modelSelect = document.getElementById("model");
  const imageCost = parseInt(form.dataset.imageCost, 10);
  const run = {
    box: document.getElementById("run"), bar: document.getElementById("progress"),
    percent: document.getElementById("percent"), status: document.getElementById("run-status"),
    cancel: document.getElementById("cancel"),
  };
  const results = { box: document.getElementById("results"), grid: document.getElementById("grid"),
                    all: document.getElementById("download-all"), reuse: document.getElementById("reuse") };
  let current = null; // the job being shown: {id, ...last known state}
  let polling = 0; // bumps to stop an older poll loop

  // --- the form --------------------------------------------------------------------------
  function imageCount() {
    const value = parseInt(count.value, 10);
    return Number.isFinite(value) ? Math.min(8, Math.max(1, value)) : 1;
  }

  /* Credits per picture come from GET /api/v1/models (the server's pricing rule: steps and
     size); the rendered price per picture stands in until the models have loaded. */
  function perPicture() {
    const option = modelSelect.selectedOptions[0];
    const price = option && option.dataset["cost" + (document.getElementById("quality").value === "quality" ? "Quality" : "Fast")];
    return price === undefined ? imageCost : parseInt(price, 10);
  }

  function showCost() {
    const cost = imageCount() * perPicture();
    document.getElementById("cost").textContent = counted(cost, "credit");
  }

  function requestBody() {
    const body = { prompt: prompt.value, n: imageCount() };
    const negative = document.getElementById("negative_prompt").value.trim();
    const seed = document.getElementById("seed").value.trim();
    const guidance = document.getElementById("guidance_scale").value.trim();
    if (negative) body.negative_prompt = negative;
    if (seed !== "") body.seed = Number(seed);
    if (guidance !== "") body.guidance_scale = Number(guidance);
    body.profile = document.getElementById("quality").value;
    if (modelSelect.value) body.model = modelSelect.value;
    return body;
  }

  function fill(settings, seed) {
    prompt.value = settings.prompt || "";
    count.value = settings.n || 1;
    document.getElementById("negative_prompt").value = settings.negative_prompt || "";
    document.getElementById("seed").value = seed ?? settings.seed ?? "";
    document.getElementById("guidance_scale").value = settings.guidance_scale ?? "";
    document.getElementById("quality").value = settings.profile === "quality" ? "quality" : "fast";
    if (settings.model) selectModel(settings.model);
    document.getElementById("options").open = true;
    showCost();
    prompt.focus();
  }

  function selectModel(id) {
    if (![...modelSelect.options].some((option) => option.value === id)) {
      modelSelect.append(el("option", { value: id, text: id }));
    }
    modelSelect.value = id;
  }

  async function loadModels() {
    const result = await api("GET", "/api/v1/models");
    if (!result.ok) return;
    const options = result.data.map((model) => el("option", {
      value: model.id,
      text: model.kind === "personal"
        ? model.name + " - token \"" + model.token + "\"" + (model.class_noun ? " (" + model.class_noun + ")" : "")
        : model.name + " (base)",
      "data-token": model.token || null, "data-class-noun": model.class_noun || null,
      "data-cost-fast": model.cost_per_picture ? model.cost_per_picture.fast : null,
      "data-cost-quality": model.cost_per_picture ? model.cost_per_picture.quality : null,
    }));
    if (options.length) {
      const chosen = modelSelect.value;
      modelSelect.replaceChildren(...options);
      if (chosen) selectModel(chosen);
    }
  }

  // --- running ---------------------------------------------------------------------------
  function showProgress(job) {
    const percent = Math.round((job.progress || 0) * 100);
    run.box.hidden = false;
    run.bar.value = percent;
    run.percent.textContent = percent + "%";
    if (job.status === "queued") {
      run.status.textContent = job.queue_position ? "Waiting in line: position " + job.queue_position : "Queued";
    } else {
      run.status.textContent = "Drawing " + (job.n ? counted(job.n, "picture") : "pictures") + "…";
    }
    run.cancel.hidden = false;
    run.cancel.disabled = false;
  }

  function showResults(job) {
    results.grid.replaceChildren(...job.images.map((image) => el("li", {},
      el("figure", {},
        el("img", { class: "pixel", src: image.url, alt: job.prompt + " (seed " + image.seed + ")",
                    width: 256, height: 256, loading: "lazy" }),
        el("figcaption", {},
          el("span", { class: "muted", text: "seed " + image.seed }),
          el("a", { class: "button small", href: image.url, download: "", text: "Download",
                    "aria-label": "Download picture with seed " + image.seed }),
          el("button", { type: "button", class: "secondary small", text: "Reuse",
                         "aria-label": "Reuse settings with seed " + image.seed,
                         onclick: () => fill(Object.assign({}, job, { n: 1 }), image.seed) }))))));
    results.all.href = "/api/v1/generations/" + job.id + "/archive";
    results.all.hidden = job.images.length < 2;
    results.box.hidden = false;
  }

  function finish(job) {
    run.cancel.hidden = true;
    generate.disabled = false;
    run.bar.value = job.status === "succeeded" ? 100 : run.bar.value;
    run.percent.textContent = run.bar.value + "%";
    if (job.status === "succeeded") {
      run.box.hidden = true;
      showResults(job);
    } else if (job.status === "canceled") {
      run.status.textContent = "Canceled. Credits for pictures not drawn were returned.";
      if (job.images && job.images.length) showResults(job);
    } else {
      run.status.textContent = "";
      showNotice(notice, "The generation failed: " + (job.error || "unknown error") + ". Its credits were returned.");
    }
    refreshCredits();
  }

  async function follow(id) {
    const mine = ++polling;
    let failures = 0;
    let wait = 0; // the first answer at once: it carries the queue position
    while (mine === polling) {
      const result = await api("GET", "/api/v1/generations/" + encodeURIComponent(id) + "?wait=" + wait);
      if (mine !== polling) return;
      if (!result.ok) {
        if (result.status === 0 || result.status >= 500) { // a blip: retry, slower each time
          if (++failures > 10) { showNotice(notice, result); return; }
          await new Promise((resolve) => setTimeout(resolve, 500 * failures));
          continue;
        }
        run.box.hidden = true;
        generate.disabled = false;
        showNotice(notice, result);
        return;
      }
      failures = 0;
      current = result.data;
      wait = current.status === "queued" ? WAIT_QUEUED_S : WAIT_RUNNING_S;
      if (["succeeded", "failed", "canceled"].includes(current.status)) return finish(current);
      showProgress(current);
    }
  }

  function remember(id) {
    const address = new URL(window.location.href);
    address.search = id ? "?job=" + encodeURIComponent(id) : "";
    window.history.replaceState(null, "", address);
  }

  async function submit(event) {
    event.preventDefault();
    hideNotice(notice);
    clearFieldErrors(form);
    if (!prompt.value.trim()) {
      showFieldErrors(form, { fields: [{ field: "prompt", message: "write a prompt first" }] });
      return;
    }
    generate.disabled = true;
    const result = await api("POST", "/api/v1/generations", {
      json: requestBody(), headers: { "Idempotency-Key": window.ImageBooth.randomKey() },
    });
    if (!result.ok) {
      generate.disabled = false;
      if (result.status === 422 && showFieldErrors(form, result.error)) {
        if (result.error.fields.some((item) => item.field !== "prompt")) document.getElementById("options").open = true;
        return;
      }
      showNotice(notice, result);
      if (result.status === 402) refreshCredits();
      return;
    }
    results.box.hidden = true;
    current = Object.assign({ progress: 0, status: result.data.status, n: imageCount() }, result.data);
    showProgress(current);
    remember(current.id);
    refreshCredits();
    follow(current.id);
  }

  async function cancel() {
    if (!current) return;
    run.cancel.disabled = true;
    const result = await api("POST", "/api/v1/generations/" + encodeURIComponent(current.id) + "/cancel");
    if (!result.ok) {
      run.cancel.disabled = false;
      showNotice(notice, result);
    }
    // the poll loop sees the canceled state and finishes
  }

  // --- wiring ----------------------------------------------------------------------------
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  count.addEventListener("input", showCost);
  modelSelect.addEventListener("change", showCost);
  document.getElementById("quality").addEventListener("change", showCost);
  form.addEventListener("submit", submit);
  run.cancel.addEventListener("click", cancel);
  results.reuse.addEventListener("click", () => current && fill(current));

  async function start() {
    const query = new URLSearchParams(window.location.search);
    await loadModels();
    if (query.get("model")) selectModel(query.get("model"));
    if (query.get("prompt")) prompt.value = query.get("prompt");
    const from = query.get("from") || query.get("job");
    if (from) {
      const result = await api("GET", "/api/v1/generations/" + encodeURIComponent(from));
      if (result.ok && query.get("from")) {
        fill(result.data);
      } else if (result.ok) {
        current = result.data;
        if (["succeeded", "failed", "canceled"].includes(current.status)) finish(current);
        else { generate.disabled = true; showProgress(current); follow(current.id); }
      } else if (result.status === 404) {
        remember(null);
      }
    }
    showCost();
    prompt.focus();
  }
  start();
})();
