/* ImageBooth pages: what every page shares. Talks to the public JSON API (/api/v1) like
   any other client; cookie-authenticated unsafe requests echo the CSRF cookie. */
"use strict";

window.ImageBooth = (function () {
  const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

  function cookie(name) {
    const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  /* fetch() that never throws: {ok, status, data, error, headers}. `error` is the API's
     {code, message, ...} object (or one made up for network failures). */
  async function api(method, path, options = {}) {
    const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    let body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    } else if (options.form !== undefined) {
      body = options.form; // FormData: the browser sets the multipart boundary
    }
    if (UNSAFE.has(method)) headers["X-CSRF-Token"] = cookie("imagebooth_csrf");
    let response;
    try {
      response = await fetch(path, { method, headers, body, credentials: "same-origin", signal: options.signal });
    } catch (failure) {
      if (failure.name === "AbortError") throw failure;
      return { ok: false, status: 0, data: null, headers: new Headers(),
               error: { code: "network", message: "The server could not be reached. Check your connection and try again." } };
    }
    let data = null;
    if (response.status !== 204 && (response.headers.get("content-type") || "").includes("json")) {
      try { data = await response.json(); } catch (_) { data = null; }
    }
    const result = { ok: response.ok, status: response.status, data, headers: response.headers, error: null };
    if (!response.ok) {
      result.error = (data && data.error) || { code: "http_" + response.status, message: "Something went wrong (HTTP " + response.status + ")." };
      if (response.status === 401 && !options.allowUnauthenticated) {
        window.location.assign("/login"); // the session expired: log in again
      }
    }
    return result;
  }

  // --- time --------------------------------------------------------------------------
  function localTime(iso) {
    const when = new Date(iso);
    return when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + " min";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  // --- words ------------------------------------------------------------------------------
  /* "1 credit", "2 credits": a number with its noun in the right number. */
  function count(number, noun, plural) {
    return number + " " + (number === 1 ? noun : plural || noun + "s");
  }

  // --- building DOM without innerHTML (prompts are user text) --------------------------
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // --- errors people can act on ----------------------------------------------------------
  let latestCredits = null;

  /* The nodes that explain a failed request: what happened and what to do next. */
  function explain(result) {
    const error = result.error || {};
    if (result.status === 402 || error.code === "insufficient_credits") {
      const parts = ["Out of credits: " + (error.message || "this needs more credits than you have.") + " "];
      if (latestCredits && latestCredits.free_resets_at) {
        const resets = new Date(latestCredits.free_resets_at);
        parts.push("Your free allowance refills at " + localTime(resets) + " (in " +
                   duration((resets - Date.now()) / 1000) + "), or ");
      } else {
        parts.push("Wait for your free allowance to refill, or ");
      }
      parts.push(el("a", { href: "/credits", text: "buy credits" }), ".");
      return parts;
    }
    if (result.status === 429 || error.code === "rate_limited") {
      const retry = parseInt(result.headers.get("Retry-After") || "", 10);
      const when = Number.isFinite(retry) ? "Try again in " + duration(retry) + "." : "Try again shortly.";
      let text = error.message || "Too many requests.";
      if (!/^too many requests/i.test(text)) text = "Too many requests: " + text;
      if (!/try again in/i.test(text)) text += " " + when;
      return [text];
    }
    if (result.status >= 500 || result.status === 0) {
      return [error.message || "Something went wrong on our side. Try again in a moment."];
    }
    return [error.message || "The request was refused."];
  }

  function showNotice(box, result, kind = "error") {
    box.replaceChildren(...(typeof result === "string" ? [result] : explain(result)));
    box.className = "notice " + kind;
    box.dataset.code = (result && result.error && result.error.code) || "";
    box.hidden = false;
  }

  function hideNotice(box) {
    box.hidden = true;
    box.replaceChildren();
  }

  /* 422 details next to their inputs: `fields: [{field, message}]` -> #FIELD-error. */
  function showFieldErrors(form, error) {
    clearFieldErrors(form);
    let shown = 0;
    for (const item of (error && error.fields) || []) {
      const slot = form.querySelector("#" + CSS.escape(item.field) + "-error");
      const input = form.querySelector("#" + CSS.escape(item.field));
      if (!slot) continue;
      slot.textContent = item.message.charAt(0).toUpperCase() + item.message.slice(1) + ".";
      slot.hidden = false;
      if (input) input.setAttribute("aria-invalid", "true");
      if (shown++ === 0 && input) input.focus();
    }
    return shown;
  }

  function clearFieldErrors(form) {
    form.querySelectorAll(".field-error").forEach((slot) => { slot.hidden = true; slot.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
  }

  // --- the header's credits ---------------------------------------------------------------
  function showCredits(credits) {
    latestCredits = credits;
    const set = (id, value) => { const node = document.getElementById(id); if (node) node.textContent = value; };
    set("balance", credits.balance);
    set("balance-unit", credits.balance === 1 ? "credit" : "credits");
    set("free-remaining", credits.free_remaining);
    const resets = document.getElementById("free-resets-at");
    if (resets) {
      resets.setAttribute("datetime", credits.free_resets_at);
      resets.textContent = new Date(credits.free_resets_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    }
  }

  async function refreshCredits() {
    const result = await api("GET", "/api/v1/me");
    if (result.ok) showCredits(result.data.credits);
    return result.ok ? result.data.credits : null;
  }

  /* After a purchase: poll until the balance changes (the webhook lands) or time runs out. */
  async function watchCredits(seconds) {
    const first = await refreshCredits();
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const now = await refreshCredits();
      if (first && now && now.balance !== first.balance) return;
    }
  }

  function randomKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // Show the header's reset time in the reader's own clock.
  document.addEventListener("DOMContentLoaded", () => {
    const resets = document.getElementById("free-resets-at");
    if (resets) {
      latestCredits = { free_resets_at: resets.getAttribute("datetime") };
      resets.textContent = new Date(resets.getAttribute("datetime")).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    }
    document.querySelectorAll("time.local-time").forEach((node) => { node.textContent = localTime(node.getAttribute("datetime")); });
  });

  return { api, el, explain, showNotice, hideNotice, showFieldErrors, clearFieldErrors, refreshCredits,
           watchCredits, localTime, duration, randomKey, cookie, count };
})();
