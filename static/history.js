/* History: GET /api/v1/generations?limit=&cursor=, newest first. The cursor lives in the
   address (?cursor=), so a reload (or a bookmark) shows the same page. */
"use strict";

(function () {
  const { api, el, showNotice, localTime, count } = window.ImageBooth;
  const PAGE_SIZE = 10;
  const list = document.getElementById("history");
  const notice = document.getElementById("notice");
  const older = document.getElementById("older");
  const newest = document.getElementById("newest");

  let modelNames = {};

  function parameters(job) {
    const parts = [count(job.n, "picture"), "model " + (modelNames[job.model] || job.model)];
    if (job.seed !== null && job.seed !== undefined) parts.push("seed " + job.seed);
    if (job.steps) parts.push(count(job.steps, "step"));
    if (job.guidance_scale !== null && job.guidance_scale !== undefined) parts.push("guidance " + job.guidance_scale);
    if (job.negative_prompt) parts.push("not: " + job.negative_prompt);
    if (job.images.length) parts.push(job.images[0].width + "×" + job.images[0].height + " px each");
    return parts.join(" · ");
  }

  function item(job) {
    const thumbs = job.images.map((image) => el("li", {},
      el("a", { href: image.url, download: "", title: "Download (seed " + image.seed + ")" },
        el("img", { class: "pixel", src: image.url, alt: (image.prompt || job.prompt) + " (seed " + image.seed + ")",
                    width: 96, height: 96, loading: "lazy" }))));
    const actions = [el("a", { class: "button secondary small", href: "/?from=" + encodeURIComponent(job.id), text: "Reuse settings" })];
    if (job.images.length > 1) {
      actions.push(el("a", { class: "button secondary small", href: "/api/v1/generations/" + job.id + "/archive",
                             download: "", text: "Download all" }));
    }
    if (job.status === "queued" || job.status === "running") {
      actions.push(el("a", { class: "button secondary small", href: "/?job=" + encodeURIComponent(job.id), text: "Watch progress" }));
    }
    return el("li", { class: "history-item", "data-id": job.id },
      el("div", { class: "history-head" },
        job.prompts ? el("ol", { class: "prompt prompts" }, job.prompts.map((text) => el("li", { text })))
                    : el("p", { class: "prompt", text: job.prompt }),
        el("span", { class: "status status-" + job.status, text: job.status })),
      el("p", { class: "muted", text: localTime(job.created_at) + " · " + parameters(job) + " · " + count(job.cost, "credit") }),
      job.error ? el("p", { class: "error", text: job.error }) : null,
      thumbs.length ? el("ul", { class: "thumbs" }, thumbs) : null,
      el("div", { class: "actions" }, actions));
  }

  async function load() {
    const query = new URLSearchParams(window.location.search);
    const cursor = query.get("cursor");
    const path = "/api/v1/generations?limit=" + PAGE_SIZE + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    const [result, models] = await Promise.all([api("GET", path), api("GET", "/api/v1/models")]);
    if (models.ok) modelNames = Object.fromEntries(models.data.map((model) => [model.id, model.name]));
    list.setAttribute("aria-busy", "false");
    if (!result.ok) return showNotice(notice, result);
    list.replaceChildren(...result.data.items.map(item));
    document.getElementById("empty").hidden = result.data.items.length > 0 || Boolean(cursor);
    newest.hidden = !cursor;
    older.hidden = !result.data.next_cursor;
    if (result.data.next_cursor) older.href = "/history?cursor=" + encodeURIComponent(result.data.next_cursor);
  }
  load();
})();
