/* Personalize: choose 3-5 photos (previews and per-file problems before anything is sent), a
   class noun (checked against the base model's classes, asked about before credits are spent),
   POST /api/v1/subjects (multipart), then POST /api/v1/subjects/{id}/finetunes and go to the
   fine-tune's status page. The lists show each subject's fine-tunes (GET /api/v1/finetunes);
   training a subject again is a deliberate, confirmed step. */
"use strict";

(function () {
  const { api, el, showNotice, hideNotice, showFieldErrors, clearFieldErrors, count, localTime, vocabulary } = window.ImageBooth;
  const MIN_PHOTOS = 3;
  const MAX_PHOTOS = 5;
  const form = document.getElementById("subject-form");
  const input = document.getElementById("images");
  const previews = document.getElementById("previews");
  const notice = document.getElementById("notice");
  const start = document.getElementById("start");
  const maxBytes = parseInt(form.dataset.maxBytes, 10);
  const finetuneCost = count(parseInt(document.getElementById("personalize").dataset.finetuneCost, 10), "credit");
  const classNoun = document.getElementById("class_noun");
  const nounWords = document.getElementById("class_noun-words");
  const confirmBox = document.getElementById("confirm");
  let chosen = []; // [{file, url, digest, problem}]

  function mebibytes(bytes) {
    return bytes < 1048576 ? Math.max(1, Math.round(bytes / 1024)) + " KiB" : (bytes / 1048576).toFixed(1) + " MiB";
  }

  async function digest(file) {
    if (!window.crypto || !crypto.subtle) return file.name + ":" + file.size; // plain http off localhost
    const hash = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(hash), (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  /* What the browser can tell before uploading; the server checks the content again. */
  function localProblems() {
    const seen = new Map();
    for (const photo of chosen) {
      photo.problem = null;
      if (!photo.file.type.startsWith("image/")) photo.problem = "not an image (choose PNG, JPEG or WebP)";
      else if (photo.file.size === 0) photo.problem = "the file is empty";
      else if (photo.file.size > maxBytes) photo.problem = "too large: " + mebibytes(photo.file.size) + ", the limit is " + mebibytes(maxBytes);
      else if (seen.has(photo.digest)) photo.problem = "the same photo as " + seen.get(photo.digest);
      else seen.set(photo.digest, photo.file.name);
    }
  }

  function countProblem() {
    if (chosen.length < MIN_PHOTOS) return "Choose " + MIN_PHOTOS + " to " + MAX_PHOTOS + " photos (" + chosen.length + " chosen so far).";
    if (chosen.length > MAX_PHOTOS) return "Choose at most " + MAX_PHOTOS + " photos (" + chosen.length + " chosen): remove " + (chosen.length - MAX_PHOTOS) + ".";
    return null;
  }

  function render() {
    localProblems();
    previews.replaceChildren(...chosen.map((photo, index) => el("li", { class: photo.problem ? "has-problem" : "" },
      photo.file.type.startsWith("image/") ? el("img", { class: "pixel", src: photo.url, alt: "Preview of " + photo.file.name, width: 96, height: 96 })
                                           : el("div", { class: "no-preview", text: "?" }),
      el("span", { class: "file-name", text: photo.file.name }),
      el("span", { class: "muted", text: mebibytes(photo.file.size) }),
      photo.problem ? el("span", { class: "field-error file-problem", text: photo.problem }) : null,
      el("button", { type: "button", class: "secondary small", text: "Remove", "aria-label": "Remove " + photo.file.name,
                     onclick: () => { URL.revokeObjectURL(photo.url); chosen.splice(index, 1); render(); } }))));
    const slot = document.getElementById("images-error");
    const problem = chosen.length ? countProblem() : null;
    slot.textContent = problem || "";
    slot.hidden = !problem;
  }

  async function choose() {
    for (const file of input.files) {
      chosen.push({ file, url: URL.createObjectURL(file), digest: await digest(file), problem: null });
    }
    input.value = ""; // choosing again adds more photos
    render();
  }

  /* The server's 422: fields next to their inputs, file reasons next to their previews. */
  function showRejection(error) {
    showFieldErrors(form, error);
    for (const rejected of error.files || []) {
      const photo = chosen.find((candidate) => candidate.file.name === rejected.file && !candidate.serverProblem);
      if (photo) photo.serverProblem = rejected.reason;
    }
    render();
    chosen.forEach((photo, index) => {
      if (!photo.serverProblem) return;
      previews.children[index].classList.add("has-problem");
      previews.children[index].append(el("span", { class: "field-error file-problem", text: photo.serverProblem }));
    });
  }

  async function startFinetune(subjectId) {
    const result = await api("POST", "/api/v1/subjects/" + encodeURIComponent(subjectId) + "/finetunes", { json: {} });
    if (result.ok) {
      window.location.assign("/finetunes/" + encodeURIComponent(result.data.id));
      return true;
    }
    showNotice(notice, result);
    return false;
  }

  // --- the class noun against the base model's classes ---------------------------------------
  function showClasses(base) {
    const classes = (base && base.vocabulary && base.vocabulary.classes) || [];
    document.getElementById("class-nouns").replaceChildren(...classes.map((name) => el("option", { value: name })));
    if (classes.length) {
      document.getElementById("class_noun-hint").textContent = "One word or two: the kind of thing the subject is. " +
        base.name + " knows " + classes.join(", ") + ": pick the closest.";
      classNoun.placeholder = classes[0];
    }
  }

  /* The base model's warnings for the class noun now, also shown under the field. */
  async function nounWarnings() {
    if (!classNoun.value.trim()) { nounWords.hidden = true; return []; }
    const warnings = await vocabulary.check({ class_noun: classNoun.value });
    nounWords.hidden = !(warnings && warnings.length);
    if (warnings && warnings.length) nounWords.textContent = warnings[0].message;
    return warnings;
  }
  const liveNounCheck = vocabulary.debounced(nounWarnings, 400);

  /* A class the base model lacks: ask first. True when the upload and training should go ahead. */
  async function confirmedNoun() {
    const warnings = await nounWarnings();
    if (!warnings || !warnings.length) return true;
    return vocabulary.confirmSpend(confirmBox, warnings, "Upload and train anyway · " + finetuneCost,
                                   "The model does not know this kind of thing.");
  }

  async function submit(event) {
    event.preventDefault();
    hideNotice(notice);
    clearFieldErrors(form);
    chosen.forEach((photo) => { photo.serverProblem = null; });
    render();
    const problem = countProblem();
    if (problem || chosen.some((photo) => photo.problem)) {
      const slot = document.getElementById("images-error");
      slot.textContent = problem || "Remove or replace the photos marked with a problem.";
      slot.hidden = false;
      input.focus();
      return;
    }
    start.disabled = true;
    if (!(await confirmedNoun())) {
      start.disabled = false;
      classNoun.focus();
      return;
    }
    const data = new FormData();
    data.append("name", document.getElementById("name").value);
    data.append("class_noun", document.getElementById("class_noun").value);
    chosen.forEach((photo) => data.append("images", photo.file, photo.file.name));
    start.setAttribute("aria-busy", "true");
    const created = await api("POST", "/api/v1/subjects", { form: data });
    if (!created.ok) {
      start.disabled = false;
      start.removeAttribute("aria-busy");
      if (created.status === 422) showRejection(created.error);
      if (created.status !== 422 || !(created.error.fields || []).length && !(created.error.files || []).length) showNotice(notice, created);
      return;
    }
    if (!(await startFinetune(created.data.id))) {
      start.disabled = false;
      start.removeAttribute("aria-busy");
      loadLists(); // the subject exists: it can be trained from the list once credits allow
    }
  }

  // --- the lists --------------------------------------------------------------------------
  const STATUS_NAMES = { queued: "queued", running: "training", succeeded: "done", failed: "failed", canceled: "canceled" };

  function generateLink(modelId, token, classNoun) {
    return "/?model=" + encodeURIComponent(modelId) + "&prompt=" + encodeURIComponent("a " + token + " " + (classNoun || ""));
  }

  function finetuneLine(finetune, subject) {
    return el("li", {},
      el("a", { href: "/finetunes/" + encodeURIComponent(finetune.id), text: "Fine-tune of " + localTime(finetune.created_at) }),
      " ", el("span", { class: "status status-" + finetune.status, text: STATUS_NAMES[finetune.status] || finetune.status }),
      finetune.model_id ? [" ", el("a", { class: "small", href: generateLink(finetune.model_id, subject.token, subject.class_noun),
                                         text: "use its model" })] : null);
  }

  /* "Train again" spends credits once more: it only asks, a second button does it. */
  function trainAgain(subject, slot) {
    const go = el("button", { type: "button", class: "small", text: "Train again · " + finetuneCost,
                              onclick: () => { go.disabled = true; startFinetune(subject.id).then((ok) => { go.disabled = ok; }); } });
    slot.replaceChildren(el("span", { class: "muted", text: "A new fine-tune of " + subject.name + " costs " + finetuneCost +
                                      "; the models you have stay. " }), go,
      el("button", { type: "button", class: "secondary small", text: "Keep what I have", onclick: () => loadLists() }));
    go.focus();
  }

  function subjectItem(subject, finetunes) {
    const actions = el("div", { class: "actions" });
    if (finetunes.length) {
      actions.append(el("button", { type: "button", class: "secondary small", text: "Train again…",
                                    onclick: () => trainAgain(subject, actions) }));
    } else {
      actions.append(el("button", { type: "button", class: "small", text: "Start fine-tune · " + finetuneCost,
                                    onclick: (event) => { event.target.disabled = true; startFinetune(subject.id).then((ok) => { event.target.disabled = ok; }); } }));
    }
    return el("li", { "data-subject": subject.id },
      el("div", {},
        el("span", {}, el("strong", { text: subject.name }), " - a " + subject.class_noun + ", token ", el("code", { text: subject.token }),
           " · " + count(subject.photo_count, "photo")),
        finetunes.length ? el("ul", { class: "finetunes" }, finetunes.map((finetune) => finetuneLine(finetune, subject)))
                         : el("p", { class: "muted", text: "Not trained yet." })),
      actions);
  }

  async function loadLists() {
    const [subjects, models, finetunes] = await Promise.all([
      api("GET", "/api/v1/subjects"), api("GET", "/api/v1/models"), api("GET", "/api/v1/finetunes")]);
    if (subjects.ok) {
      const items = subjects.data.items;
      const runs = finetunes.ok ? finetunes.data.items : [];
      document.getElementById("no-subjects").hidden = items.length > 0;
      document.getElementById("subjects").replaceChildren(...items.map((subject) =>
        subjectItem(subject, runs.filter((run) => run.subject_id === subject.id))));
    }
    if (models.ok) {
      showClasses(models.data.find((model) => model.kind === "base"));
      const personal = models.data.filter((model) => model.kind === "personal");
      document.getElementById("no-models").hidden = personal.length > 0;
      document.getElementById("models").replaceChildren(...personal.map((model) => el("li", {},
        el("span", {}, el("strong", { text: model.name }), " - token ", el("code", { text: model.token || "" })),
        el("a", { class: "button small", text: "Generate with this subject", href: generateLink(model.id, model.token, model.class_noun) }))));
    }
  }

  input.addEventListener("change", choose);
  classNoun.addEventListener("input", liveNounCheck);
  form.addEventListener("submit", submit);
  loadLists();
})();
