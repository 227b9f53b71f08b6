"""The Credits page in Chromium with payments on (Stripe's API is the local stand-in, its
events genuinely signed and posted to the server): prices before submitting, plans with the
current one marked, subscribe, manage billing, renewal, a past-due notice, a refund
explained, and one ledger line per job.

Embedded pass only, like the other browser tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.billing.conftest import (
    PLANS,
    WEBHOOK,
    WEBHOOK_SECRET,
    StripeStandIn,
    checkout_event,
    invoice_event,
    refund_event,
    sign,
    subscription_checkout_event,
)
from tests.pages.conftest import Server, running_server

pytestmark = [pytest.mark.slow, pytest.mark.backend_independent]

JOB_TIMEOUT_MS = 180_000  # the worker's first job waits for torch and the model to load
STRIPE_PAGES = {"https://checkout.stripe.test/**": "Stripe Checkout", "https://billing.stripe.test/**": "Stripe billing portal"}


@pytest.fixture(scope="module")
def stripe_stand_in() -> Iterator[StripeStandIn]:
    stand_in = StripeStandIn()
    yield stand_in
    stand_in.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, stripe_stand_in) -> Iterator[Server]:
    """Overrides the pages' server: this one takes payments."""
    with running_server(tmp_path_factory.mktemp("browser-payments"), STRIPE_SECRET_KEY="sk_test_123",
                        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=stripe_stand_in.url, PLANS=PLANS) as running:
        yield running


def stripe_sends(server: Server, payload: bytes) -> None:
    response = httpx.post(server.url + WEBHOOK, content=payload,
                          headers={"content-type": "application/json", "stripe-signature": sign(payload)})
    assert response.status_code == 200, response.text


def test_prices_plans_subscription_refund_and_grouped_ledger(page, server, stripe_stand_in, sign_up, screenshot) -> None:
    for address, title in STRIPE_PAGES.items():  # Stripe's own pages, where the browser is sent
        page.route(address, lambda route, title=title: route.fulfill(content_type="text/html", body=f"<h1>{title}</h1>"))
    sign_up(page, "plans")
    user_id = page.evaluate("fetch('/api/v1/me').then((r) => r.json()).then((me) => me.id)")

    # 1. the price follows the steps before submitting (the tiny model's default is 8 steps; quality 25)
    page.get_by_text("Options").click()
    page.get_by_label("Speed").select_option("quality")
    expect(page.locator("#generate")).to_have_text("Generate · 4 credits")
    page.get_by_label("Speed").select_option("fast")
    expect(page.locator("#generate")).to_have_text("Generate · 1 credit")
    page.get_by_label("Describe a picture").fill("a red circle")
    page.get_by_label("Describe a picture").press("Enter")
    expect(page.locator("#grid img")).to_have_count(1, timeout=JOB_TIMEOUT_MS)

    # 2. the plans, none of them mine yet
    page.get_by_role("link", name="Credits", exact=True).click()
    expect(page.locator("#plan-status")).to_have_text("You are on the free plan.")
    expect(page.locator("#plans .plan")).to_have_count(2)
    expect(page.locator("#plans")).to_contain_text("1000 credits each month, up to 8 jobs at once")
    screenshot(page, "credits-plans-free")

    # 3. subscribe: off to Stripe Checkout, in subscription mode, with who and what in the metadata
    page.get_by_role("button", name="Subscribe to Pro").click()
    page.wait_for_url(re.compile(r"^https://checkout\.stripe\.test/"))
    checkout = stripe_stand_in.forms("/v1/checkout/sessions")[-1]
    assert checkout["mode"] == "subscription" and checkout["subscription_data[metadata][user_id]"] == user_id

    # 4. Stripe reports: the checkout, the first invoice; a pack bought, then half of it refunded
    stripe_sends(server, subscription_checkout_event("evt_page_1", user_id))
    stripe_sends(server, invoice_event("evt_page_2", user_id))
    stripe_sends(server, checkout_event("evt_page_3", user_id, checkout_id="cs_page_pack", payment_intent="pi_page"))
    stripe_sends(server, refund_event("evt_page_4", amount_refunded=250, payment_intent="pi_page"))
    page.goto("/credits")
    current = page.locator("#plans .plan.current")
    expect(current).to_have_attribute("data-plan", "pro")
    expect(current).to_contain_text("Current plan")
    expect(page.locator("#plan-status")).to_have_text(re.compile(r"^Your plan: Pro\. It renews on .+\.$"))
    expect(page.get_by_role("button", name="Subscribe to Max")).to_be_disabled()
    expect(page.locator("#page-balance")).to_have_text("1050")  # 1000 from the plan, 100 bought, 50 taken back

    # 5. the ledger: one line for the job (its hold, release and spend), each other change with its reason
    rows = page.locator("#ledger tr")
    expect(rows).to_have_count(5)
    job = page.locator("#ledger tr.activity-job")
    expect(job).to_have_count(1)
    expect(job).to_contain_text("Generation - 1 spent")
    expect(page.locator("#ledger tr[data-reason='payment_refunded']")).to_contain_text(
        "Payment refunded: credits taken back - refund of pack starter: 50 of 50 credits taken back")
    expect(page.locator("#ledger tr[data-reason='plan_credits']")).to_contain_text("+1000")
    screenshot(page, "credits-plan-current")

    # 6. manage billing: Stripe's portal
    page.get_by_role("button", name="Manage billing").click()
    page.wait_for_url(re.compile(r"^https://billing\.stripe\.test/"))
    assert stripe_stand_in.forms("/v1/billing_portal/sessions")[-1]["customer"] == "cus_test_1"

    # 7. a renewal payment fails: past due, with the grace period's end on the page
    stripe_sends(server, invoice_event("evt_page_5", user_id, invoice_id="in_2", event_type="invoice.payment_failed"))
    page.goto("/credits")
    expect(page.locator("#plan-notice")).to_contain_text("Your last payment for Pro failed")
    expect(page.locator("#plan-notice")).to_contain_text("stays active until")
    expect(page.locator("#plans .plan.current")).to_have_attribute("data-plan", "pro")
    screenshot(page, "credits-past-due")
