/* Vocabulary hints, shared by Create and Personalize: what a model draws (its card's lists, from
   GET /api/v1/models) and the words it does not know (POST /api/v1/vocabulary/check: the server's
   one rule, also behind the warnings of POST /api/v1/generations). A warning never blocks: the
   page asks before spending credits on words the model will likely ignore. */
"use strict";

window.ImageBooth.vocabulary = (function () {
  const { api, el } = window.ImageBooth;

  /* Fill `box` (a <details>) with what `model` draws; hidden for a model without a vocabulary. */
  function showPanel(box, model) {
    const vocabulary = model && model.vocabulary;
    box.hidden = !vocabulary;
    if (!vocabulary) return;
    const subject = model.kind === "personal" && model.token
      ? el("p", {}, "Plus your subject: ", el("code", { text: model.token }), model.class_noun ? " (a " + model.class_noun + ")" : "")
      : null;
    box.replaceChildren(...[
      el("summary", { text: "What " + model.name + " draws" }),
      vocabulary.pattern ? el("p", { class: "pattern" }, el("code", { text: vocabulary.pattern })) : null,
      vocabulary.example ? el("p", { class: "muted" }, "For example: ", el("q", { text: vocabulary.example })) : null,
      subject,
      el("dl", { class: "groups" }, Object.entries(vocabulary.groups).flatMap(([name, items]) => [
        el("dt", { text: name.charAt(0).toUpperCase() + name.slice(1) }),
        el("dd", { text: items.join(" · ") })])),
      el("p", { class: "hint", text: "Other words are not in its card: it will likely ignore them." }),
    ].filter(Boolean));
  }

  /* The warnings for `body` ({model, prompt | prompts, class_noun}); null when the check failed. */
  async function check(body) {
    const result = await api("POST", "/api/v1/vocabulary/check", { json: body });
    return result.ok ? result.data.warnings : null;
  }

  /* `run` at most once per `ms` of quiet, e.g. while someone types. */
  function debounced(run, ms) {
    let timer = 0;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => run(...args), ms); };
  }

  /* The unknown words, short: "cat, astronaut, moon" (per line for a prompt list). */
  function summary(warnings) {
    return warnings.map((warning) => (warning.index !== null && warning.index !== undefined
      ? "line " + (warning.index + 1) + ": " : "") + warning.words.join(", ")).join("; ");
  }

  /* Ask before spending: show `title` and the warnings in `box` with "go" and "edit" buttons;
     resolves true for go, false for edit. */
  function confirmSpend(box, warnings, goLabel, title = "The model will likely ignore some of these words.") {
    return new Promise((resolve) => {
      const done = (answer) => { box.hidden = true; box.replaceChildren(); resolve(answer); };
      const go = el("button", { type: "button", id: "confirm-go", text: goLabel, onclick: () => done(true) });
      box.replaceChildren(
        el("p", { id: "confirm-title" }, el("strong", { text: title })),
        el("ul", { class: "warnings" }, warnings.map((warning) => el("li", { text: warning.message }))),
        el("div", { class: "actions" }, go,
          el("button", { type: "button", class: "secondary", id: "confirm-edit", text: "Edit first", onclick: () => done(false) })));
      box.hidden = false;
      go.focus();
    });
  }

  return { showPanel, check, debounced, summary, confirmSpend };
})();
