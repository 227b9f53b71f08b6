/* API keys: POST /api/v1/api-keys (the key is shown once), GET to list, DELETE to revoke. */
"use strict";

(function () {
  const { api, el, showNotice, hideNotice, showFieldErrors, clearFieldErrors, localTime } = window.ImageBooth;
  const form = document.getElementById("key-form");
  const notice = document.getElementById("notice");
  const rows = document.getElementById("keys");

  async function load() {
    const result = await api("GET", "/api/v1/api-keys");
    if (!result.ok) return showNotice(notice, result);
    const live = result.data.filter((key) => !key.revoked_at);
    rows.replaceChildren(...live.map((key) => el("tr", { "data-id": key.id },
      el("td", { text: key.name }),
      el("td", {}, el("code", { text: key.prefix + "…" })),
      el("td", { text: localTime(key.created_at) }),
      el("td", { text: key.last_used_at ? localTime(key.last_used_at) : "never" }),
      el("td", {}, el("button", { type: "button", class: "danger small", text: "Revoke",
                                  "aria-label": "Revoke " + key.name, onclick: () => revoke(key) })))));
    document.getElementById("no-keys").hidden = live.length > 0;
  }

  async function revoke(key) {
    if (!window.confirm("Revoke \"" + key.name + "\"? Scripts using it stop working at once.")) return;
    const result = await api("DELETE", "/api/v1/api-keys/" + encodeURIComponent(key.id));
    if (!result.ok) return showNotice(notice, result);
    load();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    hideNotice(notice);
    clearFieldErrors(form);
    const result = await api("POST", "/api/v1/api-keys", { json: { name: document.getElementById("key-name").value } });
    if (!result.ok) {
      if (result.status === 422) {
        result.error.fields = (result.error.fields || []).map((item) => Object.assign({}, item, { field: "key-name" }));
        if (showFieldErrors(form, result.error)) return;
      }
      return showNotice(notice, result);
    }
    document.getElementById("new-key-value").value = result.data.key;
    document.getElementById("new-key").hidden = false;
    document.getElementById("new-key-value").select();
    load();
  });

  document.getElementById("copy-key").addEventListener("click", async () => {
    const field = document.getElementById("new-key-value");
    field.select();
    try { await navigator.clipboard.writeText(field.value); } catch (_) { document.execCommand("copy"); }
    document.getElementById("copy-key").textContent = "Copied";
  });
  load();
})();
