/* A fine-tune's status page: polls GET /api/v1/finetunes/{id} (the API has no long-poll
   for fine-tunes; they run for minutes, so once a second is plenty). */
"use strict";

(function () {
  const { api, showNotice, duration } = window.ImageBooth;
  const POLL_MS = 1000;
  const PHASE_NAMES = { queued: "Queued", preparing: "Preparing", class_images: "Drawing class pictures",
                        training: "Training", validating: "Drawing validation pictures", done: "Done" };
  const box = document.getElementById("finetune");
  const id = box.dataset.id;
  const cancel = document.getElementById("cancel");
  const errorBox = document.getElementById("error");
  const hadPictures = Boolean(document.getElementById("validation"));
  let subject = null;

  function show(job) {
    document.getElementById("phase").textContent = PHASE_NAMES[job.phase] || job.phase;
    document.getElementById("status").textContent = job.status;
    box.dataset.status = job.status;
    box.dataset.phase = job.phase;
    const percent = Math.round((job.progress || 0) * 100);
    document.getElementById("progress").value = percent;
    document.getElementById("percent").textContent = percent + "%";
    document.getElementById("steps").textContent = job.total_steps ? "Step " + job.step + " of " + job.total_steps + "." : "";
    const eta = document.getElementById("eta");
    eta.textContent = job.status === "running" && job.eta_seconds ? "About " + duration(job.eta_seconds) + " left." : "";
    let reached = true;
    for (const item of document.querySelectorAll("#phases li")) {
      const current = item.dataset.phase === job.phase;
      item.className = current ? "current" : reached ? "past" : "";
      if (current) { reached = false; item.setAttribute("aria-current", "step"); } else item.removeAttribute("aria-current");
    }
    cancel.hidden = !["queued", "running"].includes(job.status);
    if (job.error || job.status === "failed") {
      errorBox.textContent = "The fine-tune failed: " + (job.error || "unknown error") + ". Its credits were returned.";
      errorBox.hidden = false;
    } else if (job.status === "canceled") {
      errorBox.textContent = "Canceled.";
      errorBox.hidden = false;
    }
  }

  const SCORE_NAMES = { subject_fidelity: "subject", language_drift: "drift (reader)",
                        heldout_loss: "held-out loss", prior_drift: "drift from base" };

  function showCheckpoints(job) {
    const rows = document.getElementById("checkpoint-rows");
    document.getElementById("checkpoints").hidden = !(job.checkpoints && job.checkpoints.length);
    document.getElementById("checkpoint-rule").textContent = job.checkpoint_rule ? "Rule: " + job.checkpoint_rule + "." : "";
    rows.replaceChildren(...(job.checkpoints || []).map((checkpoint) => {
      const row = document.createElement("tr");
      const chosen = checkpoint.step === job.chosen_step;
      row.dataset.step = checkpoint.step;
      if (chosen) row.className = "chosen";
      const scores = Object.entries(checkpoint.scores)
        .map(([name, value]) => (SCORE_NAMES[name] || name) + " " + Number(value).toPrecision(3)).join(" · ");
      for (const text of [String(checkpoint.step), scores, chosen ? "chosen" : ""]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }));
  }

  async function loadSubject(subjectId) {
    const result = await api("GET", "/api/v1/subjects/" + encodeURIComponent(subjectId));
    if (!result.ok) return;
    subject = result.data;
    document.getElementById("subject-name").textContent = "of " + subject.name + " (" + subject.class_noun + ", token " + subject.token + ")";
  }

  function offerGenerate(job) {
    if (!job.model_id || !subject) return;
    const link = document.getElementById("use");
    link.href = "/?model=" + encodeURIComponent(job.model_id) + "&prompt=" + encodeURIComponent("a " + subject.token + " " + subject.class_noun + " on a red background");
    link.hidden = false;
  }

  async function poll() {
    let failures = 0;
    for (;;) {
      const result = await api("GET", "/api/v1/finetunes/" + encodeURIComponent(id));
      if (!result.ok) {
        if ((result.status === 0 || result.status >= 500) && ++failures < 30) {
          await new Promise((resolve) => setTimeout(resolve, POLL_MS * 2));
          continue;
        }
        return showNotice(errorBox, result);
      }
      failures = 0;
      const job = result.data;
      if (!subject) await loadSubject(job.subject_id);
      show(job);
      showCheckpoints(job);
      if (job.status === "succeeded") {
        offerGenerate(job);
        window.ImageBooth.refreshCredits();
        // The validation pictures are rendered by the server: fetch them with one reload.
        // (Once: a model without pictures must not reload forever.)
        const key = "imagebooth.reloaded." + id;
        if (!hadPictures && !sessionStorage.getItem(key)) {
          sessionStorage.setItem(key, "1");
          window.location.reload();
        }
        return;
      }
      if (["failed", "canceled"].includes(job.status)) { window.ImageBooth.refreshCredits(); return; }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    const result = await api("POST", "/api/v1/finetunes/" + encodeURIComponent(id) + "/cancel");
    cancel.disabled = false;
    if (!result.ok) showNotice(errorBox, result);
    else show(result.data);
  });
  poll();
})();
