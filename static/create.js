/* Create: a prompt (or one prompt per line) -> the model's vocabulary check -> POST
   /api/v1/generations -> long-poll GET /api/v1/generations/{id}?wait= -> results grid. The job
   id goes into the address (?job=), so a reload picks it up again; text not yet sent is kept
   for the tab in sessionStorage. */
"use strict";

(function () {
  const { api, el, showNotice, hideNotice, showFieldErrors, clearFieldErrors, refreshCredits, vocabulary } = window.ImageBooth;
  const counted = window.ImageBooth.count;
  // Long-poll: the API answers as soon as the job's status or progress changes. While queued,
  // the line moves without the job changing, so the position is asked for more often.
  const WAIT_RUNNING_S = 20;
  const WAIT_QUEUED_S = 2;
  const MAX_PROMPT_CHARS = 1000; // the API's limits (app/generation/schemas.py)
  const MAX_PROMPTS = 8;
  const DRAFT_KEY = "imagebooth.create.draft";
  const form = document.getElementById("create-form");
  const prompt = document.getElementById("prompt");
  const perLine = document.getElementById("one-per-line");
  const count = document.getElementById("n");
  const generate = document.getElementById("generate");
  const notice = document.getElementById("notice");
  const modelSelect = document.getElementById("model");
  const words = document.getElementById("prompt-words");
  const length = document.getElementById("prompt-length");
  const panel = document.getElementById("vocabulary");
  const confirmBox = document.getElementById("confirm");
  const imageCost = parseInt(form.dataset.imageCost, 10);
  const run = {
    box: document.getElementById("run"), bar: document.getElementById("progress"),
    percent: document.getElementById("percent"), status: document.getElementById("run-status"),
    cancel: document.getElementById("cancel"),
  };
  const results = { box: document.getElementById("results"), grid: document.getElementById("grid"),
                    all: document.getElementById("download-all"), reuse: document.getElementById("reuse") };
  let models = {}; // id -> the model as GET /api/v1/models lists it
  let current = null; // the job being shown: {id, ...last known state}
  let polling = 0; // bumps to stop an older poll loop

  // --- the prompt ------------------------------------------------------------------------
  function prompts() {
    return perLine.checked ? prompt.value.split("\n").map((line) => line.trim()).filter(Boolean) : [prompt.value];
  }

  function imageCount() {
    if (perLine.checked) return Math.min(MAX_PROMPTS, Math.max(1, prompts().length));
    const value = parseInt(count.value, 10);
    return Number.isFinite(value) ? Math.min(8, Math.max(1, value)) : 1;
  }

  /* What the API would refuse, said before anything is sent: {field, message} or null. */
  function promptProblem() {
    const list = prompts();
    if (!list.length || !list[0].trim()) return { field: "prompt", message: "write a prompt first" };
    if (list.length > MAX_PROMPTS) {
      return { field: "prompt", message: "one prompt per line, " + MAX_PROMPTS + " at most (there are " + list.length + ")" };
    }
    const long = list.findIndex((text) => text.length > MAX_PROMPT_CHARS);
    if (long < 0) return null;
    const which = perLine.checked ? "line " + (long + 1) + " has " : "the prompt has ";
    return { field: "prompt", message: which + list[long].length + " characters, " + MAX_PROMPT_CHARS + " at most: shorten it" };
  }

  function showLength() {
    const longest = Math.max(0, ...prompts().map((text) => text.length));
    length.hidden = longest < MAX_PROMPT_CHARS * 0.8;
    length.textContent = longest + " of " + MAX_PROMPT_CHARS + " characters" + (perLine.checked ? " (longest line)" : "");
    length.classList.toggle("over", longest > MAX_PROMPT_CHARS);
  }

  function showMode() {
    count.disabled = perLine.checked;
    prompt.rows = perLine.checked ? 5 : 2;
    document.getElementById("prompt-hint").textContent = perLine.checked
      ? "Each line is one picture (up to " + MAX_PROMPTS + "), each with its own seed; Ctrl+Enter generates."
      : "Enter generates; Shift+Enter starts a new line.";
  }

  function setPrompts(list) {
    perLine.checked = list.length > 1;
    prompt.value = list.join("\n");
    showMode();
    promptChanged();
  }

  function promptChanged() {
    showLength();
    showCost();
    sessionStorage.setItem(DRAFT_KEY, JSON.stringify({ text: prompt.value, perLine: perLine.checked }));
    liveCheck();
  }

  function restoreDraft() {
    try {
      const draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null");
      if (draft && draft.text) { prompt.value = draft.text; perLine.checked = Boolean(draft.perLine); showMode(); }
    } catch (_) { /* a broken draft is no draft */ }
  }

  // --- what the model knows --------------------------------------------------------------
  function checkBody() {
    const body = { model: modelSelect.value || null };
    if (perLine.checked) body.prompts = prompts(); else body.prompt = prompt.value;
    return body;
  }

  /* The model's warnings for the prompt now, also shown under the box; null if unknown. */
  async function showWords() {
    if (promptProblem()) { words.hidden = true; return []; }
    const warnings = await vocabulary.check(checkBody());
    words.hidden = !(warnings && warnings.length);
    if (warnings && warnings.length) words.textContent = "Not in this model's vocabulary: " + vocabulary.summary(warnings) + ".";
    return warnings;
  }
  const liveCheck = vocabulary.debounced(showWords, 400);

  function chosenModel() {
    return models[modelSelect.value] || Object.values(models).find((model) => model.kind === "base");
  }

  // --- price -----------------------------------------------------------------------------
  /* Credits per picture come from GET /api/v1/models (the server's pricing rule: steps and
     size); the rendered price per picture stands in until the models have loaded. */
  function perPicture() {
    const model = chosenModel();
    const quality = document.getElementById("quality").value === "quality";
    return model && model.cost_per_picture ? model.cost_per_picture[quality ? "quality" : "fast"] : imageCost;
  }

  function cost() {
    return counted(imageCount() * perPicture(), "credit");
  }

  function showCost() {
    document.getElementById("cost").textContent = cost();
  }

  function requestBody() {
    const body = perLine.checked ? { prompts: prompts() } : { prompt: prompt.value, n: imageCount() };
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
    setPrompts(settings.prompts || [settings.prompt || ""]);
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
    vocabulary.showPanel(panel, chosenModel());
    // a personal model chosen from a link is shown, not left folded away under Options
    if (models[id] && models[id].kind === "personal") document.getElementById("options").open = true;
  }

  async function loadModels() {
    const result = await api("GET", "/api/v1/models");
    if (!result.ok) return;
    models = Object.fromEntries(result.data.map((model) => [model.id, model]));
    const options = result.data.map((model) => el("option", {
      value: model.id,
      text: model.kind === "personal"
        ? model.name + " - token \"" + model.token + "\"" + (model.class_noun ? " (" + model.class_noun + ")" : "")
        : model.name + " (base)",
    }));
    if (options.length) {
      const chosen = modelSelect.value;
      modelSelect.replaceChildren(...options);
      if (chosen) selectModel(chosen);
    }
    vocabulary.showPanel(panel, chosenModel());
  }

  // --- running ---------------------------------------------------------------------------
  function showProgress(job) {
    const percent = Math.round((job.progress || 0) * 100);
    run.box.hidden = false;
    run.bar.value = percent;
    run.percent.textContent = percent + "%";
    if (job.status === "queued") {
      run.status.textContent = job.queue_position ? waitingInLine(job) : "Queued";
    } else {
      run.status.textContent = "Drawing " + (job.n ? counted(job.n, "picture") : "pictures") + "…";
    }
    run.cancel.hidden = false;
    run.cancel.disabled = false;
  }

  // Premium work first, then users in turns: the position is the worker's own order, and the
  // estimate comes from the worker's measured pace. No pace means no batch has run yet: a fresh
  // install, whose worker first prepares (compiles) the model, which takes a minute or two.
  function waitingInLine(job) {
    const wait = job.estimated_wait_s;
    const estimate = wait === null || wait === undefined ? " · the first pictures wait while the worker prepares the model (a minute or two)"
      : wait < 1 ? " · starting in a moment" : " · about " + Math.ceil(wait) + " s to wait";
    return "Waiting in line: position " + job.queue_position + estimate;
  }

  function picture(job, image) {
    const text = image.prompt || job.prompt;
    return el("li", {},
      el("figure", {},
        el("img", { class: "pixel", src: image.url, alt: text + " (seed " + image.seed + ")", width: 256, height: 256, loading: "lazy" }),
        job.prompts ? el("p", { class: "image-prompt", text }) : null,
        el("figcaption", {},
          el("span", { class: "muted", text: "seed " + image.seed + " · " + image.width + "×" + image.height + " px" }),
          el("a", { class: "button small", href: image.url, download: "", text: "Download",
                    "aria-label": "Download picture with seed " + image.seed }),
          el("button", { type: "button", class: "secondary small", text: "Reuse",
                         "aria-label": "Reuse settings with seed " + image.seed,
                         onclick: () => fill(Object.assign({}, job, { n: 1, prompts: null, prompt: text }), image.seed) }))));
  }

  function showResults(job) {
    results.grid.replaceChildren(...job.images.map((image) => picture(job, image)));
    const first = job.images[0];
    document.getElementById("size-note").textContent = first
      ? "Each picture is " + first.width + "×" + first.height + " pixels, the model's size, shown enlarged here; downloads are " +
        first.width + "×" + first.height + " PNGs."
      : "";
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

  /* Unknown words: ask first. True when the generation should go ahead. */
  async function confirmedWords() {
    const warnings = await showWords();
    if (!warnings || !warnings.length) return true;
    return vocabulary.confirmSpend(confirmBox, warnings, "Generate anyway · " + cost());
  }

  async function submit(event) {
    event.preventDefault();
    hideNotice(notice);
    clearFieldErrors(form);
    const problem = promptProblem();
    if (problem) {
      showFieldErrors(form, { fields: [problem] });
      return;
    }
    generate.disabled = true;
    if (!(await confirmedWords())) {
      generate.disabled = false;
      prompt.focus();
      return;
    }
    const result = await api("POST", "/api/v1/generations", {
      json: requestBody(), headers: { "Idempotency-Key": window.ImageBooth.randomKey() },
    });
    if (!result.ok) {
      generate.disabled = false;
      if (result.status === 422 && showFieldErrors(form, result.error)) {
        if (result.error.fields.some((item) => !["prompt", "prompts"].includes(item.field))) document.getElementById("options").open = true;
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
    if (event.key !== "Enter" || event.isComposing) return;
    // one per line: Enter is a new line, Ctrl+Enter generates; otherwise Enter generates
    const submits = perLine.checked ? event.ctrlKey || event.metaKey : !event.shiftKey;
    if (submits) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  prompt.addEventListener("input", promptChanged);
  perLine.addEventListener("change", () => { showMode(); promptChanged(); });
  count.addEventListener("input", showCost);
  modelSelect.addEventListener("change", () => { vocabulary.showPanel(panel, chosenModel()); showCost(); liveCheck(); });
  document.getElementById("quality").addEventListener("change", showCost);
  form.addEventListener("submit", submit);
  run.cancel.addEventListener("click", cancel);
  results.reuse.addEventListener("click", () => current && fill(current));

  async function start() {
    const query = new URLSearchParams(window.location.search);
    await loadModels();
    if (query.get("model")) selectModel(query.get("model"));
    const from = query.get("from") || query.get("job");
    if (query.get("prompt")) setPrompts([query.get("prompt")]);
    else if (!from) restoreDraft();
    if (from) {
      const result = await api("GET", "/api/v1/generations/" + encodeURIComponent(from));
      if (result.ok && query.get("from")) {
        fill(result.data);
      } else if (result.ok) {
        current = result.data;
        setPrompts(current.prompts || [current.prompt]); // the page shows what it drew
        if (["succeeded", "failed", "canceled"].includes(current.status)) finish(current);
        else { generate.disabled = true; showProgress(current); follow(current.id); }
      } else if (result.status === 404) {
        remember(null);
      }
    }
    showMode();
    showLength();
    showCost();
    prompt.focus();
  }
  start();
})();
