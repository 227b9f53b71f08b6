/* Credits: the ledger (GET /api/v1/credits/ledger) and the packs on sale
   (GET /api/v1/billing/packs); buying goes to Stripe Checkout (POST /api/v1/billing/checkout). */
"use strict";

(function () {
  const { api, el, showNotice, localTime } = window.ImageBooth;
  const notice = document.getElementById("notice");
  const ledger = document.getElementById("ledger");
  const more = document.getElementById("ledger-more");
  const REASONS = { daily_allowance: "Daily free allowance", reservation: "Held for a job", release: "Hold released",
                    spend: "Spent", purchase: "Purchase", refund: "Refund", grant: "Granted", admin: "Granted by an operator" };
  let cursor = null;

  function money(cents, currency) {
    try {
      return new Intl.NumberFormat([], { style: "currency", currency: (currency || "usd").toUpperCase() }).format(cents / 100);
    } catch (_) {
      return (cents / 100).toFixed(2) + " " + (currency || "").toUpperCase();
    }
  }

  async function loadLedger() {
    const result = await api("GET", "/api/v1/credits/ledger?limit=25" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    if (!result.ok) {
      if (result.status === 404) { // the ledger route is not on this server yet
        document.getElementById("ledger-empty").textContent = "The ledger is not available on this server.";
        document.getElementById("ledger-empty").hidden = false;
        return;
      }
      return showNotice(notice, result);
    }
    ledger.append(...result.data.items.map((entry) => el("tr", {},
      el("td", { text: localTime(entry.created_at) }),
      el("td", { class: entry.amount < 0 ? "debit" : "credit", text: (entry.amount > 0 ? "+" : "") + entry.amount }),
      el("td", { text: entry.bucket }),
      el("td", { text: (REASONS[entry.reason] || entry.reason) + (entry.note ? " - " + entry.note : "") }))));
    document.getElementById("ledger-empty").hidden = ledger.children.length > 0;
    cursor = result.data.next_cursor;
    more.hidden = !cursor;
  }

  async function buy(pack, button) {
    button.disabled = true;
    const result = await api("POST", "/api/v1/billing/checkout", { json: { pack: pack.id } });
    if (result.ok && result.data.url) {
      window.location.assign(result.data.url); // Stripe Checkout; it returns to /credits/success or /credits/cancel
      return;
    }
    button.disabled = false;
    if (result.status === 503 && result.error.code === "payments_disabled") {
      showNotice(notice, "Payments are turned off on this server, so credits cannot be bought here. " +
                         "Your free allowance resets every day.", "info");
    } else {
      showNotice(notice, result);
    }
  }

  async function loadPacks() {
    const result = await api("GET", "/api/v1/billing/packs");
    const packs = document.getElementById("packs");
    if (!result.ok) {
      if (result.status === 404) packs.append(el("li", { class: "muted", text: "No credit packs are on sale on this server." }));
      else showNotice(notice, result);
      return;
    }
    const items = result.data.packs || [];
    if (result.data.payments_enabled === false && !document.getElementById("payments-off")) {
      showNotice(notice, "Payments are turned off on this server, so credits cannot be bought here.", "info");
    }
    packs.replaceChildren(...items.map((pack) => {
      const button = el("button", { type: "button", text: "Buy " + pack.name + " for " + money(pack.price_cents, pack.currency),
                                    disabled: result.data.payments_enabled === false });
      button.addEventListener("click", () => buy(pack, button));
      return el("li", { class: "pack" },
        el("strong", { text: pack.credits + " credits" }),
        el("span", { class: "muted", text: money(pack.price_cents, pack.currency) }),
        button);
    }));
  }

  more.addEventListener("click", loadLedger);
  loadLedger();
  loadPacks();
})();
