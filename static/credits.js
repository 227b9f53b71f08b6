/* Credits: the caller's activity (GET /api/v1/credits/activity: one line per job), the plans
   (GET /api/v1/billing/plans, the subscription from GET /api/v1/me) and the packs on sale
   (GET /api/v1/billing/packs). Subscribing and buying go to Stripe Checkout
   (POST /api/v1/billing/subscribe, /checkout); "Manage billing" to Stripe's portal (/portal). */
"use strict";

(function () {
  const { api, el, showNotice, localTime, count } = window.ImageBooth;
  const notice = document.getElementById("notice");
  const planNotice = document.getElementById("plan-notice");
  const ledger = document.getElementById("ledger");
  const more = document.getElementById("ledger-more");
  const manage = document.getElementById("manage-billing");
  const REASONS = { daily_allowance: "Daily free allowance", purchase: "Purchase", plan_credits: "Plan credits",
                    payment_refunded: "Payment refunded: credits taken back",
                    payment_disputed: "Payment disputed: credits taken back",
                    refund: "Refund", grant: "Granted", admin: "Granted by an operator" };
  const INTERVALS = { day: "day", week: "week", month: "month", year: "year" };
  const PAYMENTS_OFF = "Payments are turned off on this server, so nothing can be bought here. Your free allowance resets every day.";
  let cursor = null;

  function money(cents, currency) {
    try {
      return new Intl.NumberFormat([], { style: "currency", currency: (currency || "usd").toUpperCase() }).format(cents / 100);
    } catch (_) {
      return (cents / 100).toFixed(2) + " " + (currency || "").toUpperCase();
    }
  }

  function day(iso) {
    return new Date(iso).toLocaleDateString([], { dateStyle: "medium" });
  }

  // --- activity ------------------------------------------------------------------------------
  function jobLine(item) {
    const [kind, id] = (item.reference || ":").split(":");
    const name = kind === "finetune" ? "Fine-tune" : "Generation";
    const href = kind === "finetune" ? "/finetunes/" + encodeURIComponent(id) : "/?job=" + encodeURIComponent(id);
    let what;
    if (!item.settled) what = item.held + " held while it runs";
    else if (item.spent === item.held) what = item.spent + " spent";
    else what = item.spent + " spent, " + (item.held - item.spent) + " of " + item.held + " returned (not made)";
    return [el("a", { href, text: name }), " - " + what];
  }

  function source(item) {
    const paid = item.amount - item.free;
    if (item.free && paid) return "free " + Math.abs(item.free) + ", paid " + Math.abs(paid);
    return item.free ? "free" : "paid";
  }

  function row(item) {
    const why = item.kind === "job" ? jobLine(item)
      : [(REASONS[item.reason] || item.reason) + (item.note ? " - " + item.note : "")];
    return el("tr", { class: "activity-" + item.kind, "data-reason": item.reason },
      el("td", { text: localTime(item.created_at) }),
      el("td", { class: item.amount < 0 ? "debit" : "credit", text: (item.amount > 0 ? "+" : "") + item.amount }),
      el("td", { text: item.amount ? source(item) : "" }),
      el("td", {}, ...why));
  }

  async function loadLedger() {
    const result = await api("GET", "/api/v1/credits/activity?limit=25" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    if (!result.ok) return showNotice(notice, result);
    ledger.append(...result.data.items.map(row));
    document.getElementById("ledger-empty").hidden = ledger.children.length > 0;
    cursor = result.data.next_cursor;
    more.hidden = !cursor;
  }

  // --- going to Stripe -------------------------------------------------------------------------
  async function goTo(path, body, button, box) {
    button.disabled = true;
    const result = await api("POST", path, body === undefined ? {} : { json: body });
    if (result.ok && result.data.url) {
      window.location.assign(result.data.url); // Stripe; it returns to /credits/success, /credits/cancel or /credits
      return;
    }
    button.disabled = false;
    if (result.status === 503 && result.error.code === "payments_disabled") showNotice(box, PAYMENTS_OFF, "info");
    else showNotice(box, result);
  }

  // --- plans -----------------------------------------------------------------------------------
  function planStatus(subscription) {
    const status = document.getElementById("plan-status");
    if (!subscription) { status.textContent = "You are on the free plan."; return; }
    const name = subscription.name || subscription.plan;
    if (subscription.status === "past_due" && subscription.in_good_standing) {
      showNotice(planNotice, "Your last payment for " + name + " failed. Update your payment method under Manage billing; " +
                 "the plan stays active until " + day(subscription.grace_until) + " while Stripe retries.", "info");
    } else if (subscription.status === "past_due" || subscription.status === "unpaid") {
      showNotice(planNotice, "Your " + name + " plan is paused: its payment failed and the grace period is over. " +
                 "Update your payment method under Manage billing to continue.");
    }
    if (subscription.in_good_standing && subscription.ends_at) {
      status.textContent = "Your plan: " + name + ". It ends on " + day(subscription.ends_at) + " and will not renew.";
    } else if (subscription.in_good_standing) {
      status.textContent = "Your plan: " + name + (subscription.renews_at ? ". It renews on " + day(subscription.renews_at) + "." : ".");
    } else {
      status.textContent = "You are on the free plan (your " + name + " subscription is " + subscription.status.replace("_", " ") + ").";
    }
  }

  function planItem(plan, current, enabled) {
    const mine = plan.id === current;
    const button = mine
      ? el("span", { class: "badge", text: "Current plan" })
      : el("button", { type: "button", text: "Subscribe to " + plan.name,
                       disabled: !enabled || current !== "free" });
    if (!mine) button.addEventListener("click", () => goTo("/api/v1/billing/subscribe", { plan: plan.id }, button, planNotice));
    return el("li", { class: "pack plan" + (mine ? " current" : ""), "data-plan": plan.id, "aria-current": mine ? "true" : null },
      el("strong", { text: plan.name }),
      el("span", { text: money(plan.price_cents, plan.currency) + " a " + (INTERVALS[plan.interval] || plan.interval) }),
      el("span", { class: "muted", text: count(plan.credits, "credit") + " each " + (INTERVALS[plan.interval] || plan.interval) +
                                         ", up to " + plan.max_active_jobs + " jobs at once, faster queue" }),
      button);
  }

  async function loadPlans() {
    const [plans, me] = await Promise.all([api("GET", "/api/v1/billing/plans"), api("GET", "/api/v1/me")]);
    if (!plans.ok) return showNotice(planNotice, plans);
    const subscription = me.ok ? me.data.subscription : null;
    document.getElementById("plans").replaceChildren(
      ...plans.data.plans.map((plan) => planItem(plan, plans.data.current, plans.data.payments_enabled)));
    planStatus(subscription);
    manage.hidden = !plans.data.payments_enabled;
    document.getElementById("manage-hint").hidden = manage.hidden;
  }

  // --- packs -----------------------------------------------------------------------------------
  async function loadPacks() {
    const result = await api("GET", "/api/v1/billing/packs");
    const packs = document.getElementById("packs");
    if (!result.ok) return showNotice(notice, result);
    if (result.data.payments_enabled === false && !document.getElementById("payments-off")) {
      showNotice(notice, PAYMENTS_OFF, "info");
    }
    packs.replaceChildren(...(result.data.packs || []).map((pack) => {
      const button = el("button", { type: "button", text: "Buy " + pack.name + " for " + money(pack.price_cents, pack.currency),
                                    disabled: result.data.payments_enabled === false });
      button.addEventListener("click", () => goTo("/api/v1/billing/checkout", { pack: pack.id }, button, notice));
      return el("li", { class: "pack" },
        el("strong", { text: count(pack.credits, "credit") }),
        el("span", { class: "muted", text: money(pack.price_cents, pack.currency) }),
        button);
    }));
  }

  more.addEventListener("click", loadLedger);
  manage.addEventListener("click", () => goTo("/api/v1/billing/portal", undefined, manage, planNotice));
  loadLedger();
  loadPlans();
  loadPacks();
})();
