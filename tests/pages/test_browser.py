"""The pages in Chromium against a real server and worker (tiny random model): sign up,
generate with progress, download a PNG with its parameters, out of credits, personalize
with a fine-tune, history across reloads and logins, credits and API keys.

Embedded pass only (the server runs on SQLite and the filesystem broker whatever the
pass; running it twice would only double the slowest tests).
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime

import pytest
from playwright.sync_api import expect

from tests.pages.conftest import FREE_DAILY_CREDITS

pytestmark = [pytest.mark.slow, pytest.mark.backend_independent]

JOB_TIMEOUT_MS = 180_000  # the worker's first job waits for torch and the model to load
FINETUNE_TIMEOUT_MS = 300_000
PROMPT = "a small blue star on the left on a yellow background"


def _png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    size = 96
    picture = Image.new("RGB", (size, size), (245, 245, 245))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((16, 16, size - 16, size - 16), fill=color)
    draw.ellipse((36, 36, 42, 42), fill=(20, 20, 20))  # a face, so each photo is its own
    draw.ellipse((size - 42, 36, size - 36, 42), fill=(20, 20, 20))
    draw.arc((34, 40, size - 34, size - 30), 20, 160, fill=(20, 20, 20), width=3)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def face_photos(folder, prefix: str) -> list:
    """Three photos of a face on a red, a green and a blue disc (a subject to upload)."""
    photos = []
    for index, color in enumerate([(220, 40, 40), (40, 170, 70), (40, 80, 220)]):
        photos.append(folder / f"{prefix}-{index}.png")
        photos[-1].write_bytes(_png(color))
    return photos


def test_signup_generate_progress_download_history(page, server, sign_up, screenshot) -> None:
    # 1. sign up: a bad address and a short password are named next to their fields
    page.goto("/signup")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#email-error")).to_contain_text("email address")
    expect(page.locator("#password-error")).to_contain_text("at least 8")
    screenshot(page, "signup-errors")
    email = sign_up(page)

    # 2. the create page: focus in the prompt, cost on the button, options folded away
    assert page.evaluate("document.activeElement.id") == "prompt"
    expect(page.locator("#generate")).to_have_text("Generate · 1 credit")
    expect(page.locator("#n")).to_be_hidden()
    page.get_by_text("Options").click()
    page.get_by_label("Number of images").fill("2")
    expect(page.locator("#generate")).to_have_text("Generate · 2 credits")
    page.get_by_label("Seed").fill("1234")
    screenshot(page, "create-options")

    # 3. Enter generates; progress shows, then the pictures
    page.get_by_label("Describe a picture").fill(PROMPT)
    page.get_by_label("Describe a picture").press("Enter")
    expect(page.locator("#run")).to_be_visible()
    expect(page.locator("#percent")).to_have_text(re.compile(r"^\d+%$"))
    expect(page.locator("#run-status")).to_have_text(re.compile(r"Queued|Waiting in line|Drawing"))
    screenshot(page, "create-progress")
    expect(page.locator("#grid img")).to_have_count(2, timeout=JOB_TIMEOUT_MS)
    page.wait_for_function("[...document.querySelectorAll('#grid img')].every((img) => img.complete && img.naturalWidth > 0)")
    assert page.locator("#grid img").first.evaluate("(img) => getComputedStyle(img).imageRendering") == "pixelated"
    expect(page.locator("#free-remaining")).to_have_text("4")  # the header follows the charge
    assert "job=" in page.url
    screenshot(page, "create-results")

    # 4. one-click download: a PNG whose parameters hold the prompt and its seed
    first = page.locator("#grid li").first
    seed = int(re.search(r"seed (\d+)", first.inner_text()).group(1))
    assert seed in (1234, 1235)
    with page.expect_download() as download_info:
        first.get_by_role("link", name=re.compile("Download")).click()
    from PIL import Image

    image = Image.open(download_info.value.path())
    assert image.format == "PNG"
    parameters = image.info["parameters"]
    assert parameters.startswith(PROMPT) and f"Seed: {seed}" in parameters
    with page.expect_download() as archive_info:
        page.get_by_role("link", name="Download all (.zip)").click()
    with zipfile.ZipFile(archive_info.value.path()) as archive:
        assert len([name for name in archive.namelist() if name.endswith(".png")]) == 2

    # 5. reuse these settings; the page also survives a reload
    page.get_by_label("Describe a picture").fill("something else")
    page.get_by_role("button", name="Reuse these settings").click()
    expect(page.get_by_label("Describe a picture")).to_have_value(PROMPT)
    expect(page.get_by_label("Seed", exact=True)).to_have_value("1234")
    page.reload()
    expect(page.locator("#grid img")).to_have_count(2)

    # 6. phone-sized window: nothing wider than the screen
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "create-results-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # 7. history: there after a reload, and after logging out and in again
    page.get_by_role("link", name="History").click()
    expect(page.locator(".history-item")).to_have_count(1)
    expect(page.locator(".history-item .prompt")).to_have_text(PROMPT)
    page.reload()
    expect(page.locator(".history-item img")).to_have_count(2)
    screenshot(page, "history")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login$"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a long password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.url}/")
    page.goto("/history")
    expect(page.locator(".history-item .prompt")).to_have_text(PROMPT)
    page.get_by_role("link", name="Reuse settings").click()
    expect(page.get_by_label("Describe a picture")).to_have_value(PROMPT)
    # keyboard: from the prompt, Tab reaches the button, then the folded options
    page.get_by_label("Describe a picture").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "generate"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"

    # 8. the charge is in the credits page's ledger
    page.get_by_role("link", name="Credits", exact=True).click()
    expect(page.locator("#ledger tr").first).to_be_visible()
    expect(page.locator("#ledger")).to_contain_text("-2")


def test_out_of_credits_says_what_happened_and_what_to_do(page, sign_up, screenshot) -> None:
    sign_up(page, "broke")
    page.get_by_text("Options").click()
    page.get_by_label("Number of images").fill("8")
    expect(page.locator("#generate")).to_have_text("Generate · 8 credits")
    page.get_by_label("Describe a picture").fill("a red circle")
    page.get_by_role("button", name=re.compile("Generate")).click()
    notice = page.locator("#notice")
    expect(notice).to_contain_text("Out of credits")
    expect(notice).to_contain_text("needs 8")
    expect(notice).to_contain_text("refills at")
    expect(notice.get_by_role("link", name="buy credits")).to_have_attribute("href", "/credits")
    expect(page.locator("#run")).to_be_hidden()
    assert "Traceback" not in page.content()
    screenshot(page, "create-out-of-credits")


def test_rate_limited_says_when_to_retry(page, sign_up, screenshot) -> None:
    from tests.pages.conftest import JOBS_PER_USER

    sign_up(page, "hasty")
    csrf = {"X-CSRF-Token": next(c["value"] for c in page.context.cookies() if c["name"] == "imagebooth_csrf")}
    for _ in range(JOBS_PER_USER):  # use up the minute's submissions (some may already be refused)
        page.request.post("/api/v1/generations", data={"prompt": "a red circle"}, headers=csrf)
    page.get_by_label("Describe a picture").fill("a green square")
    page.get_by_label("Describe a picture").press("Enter")
    notice = page.locator("#notice")
    expect(notice).to_contain_text("Too many requests")
    expect(notice).to_contain_text(re.compile(r"try again in \d+", re.IGNORECASE))
    expect(page.locator("#generate")).to_be_enabled()
    screenshot(page, "create-rate-limited")


def test_a_queued_picture_shows_its_place_and_estimated_wait(page, server, sign_up, screenshot) -> None:
    from tests.pages.conftest import api_user

    # 1. a premium user's long jobs hold the inference worker, once a first job measured its pace
    with api_user(server, paid_credits=2000) as premium:
        first = premium.post("/api/v1/generations", json={"prompt": "a red circle"}).json()["id"]
        views = (premium.get(f"/api/v1/generations/{first}", params={"wait": 20}).json() for _ in range(30))
        assert next(view for view in views if view["status"] not in ("queued", "running"))["status"] == "succeeded"
        long_jobs = [premium.post("/api/v1/generations", json={"prompt": "a long one", "n": 8, "steps": 100}).json()["id"]
                     for _ in range(2)]  # the server's rate limit allows 3 submissions a minute
        # 2. a free user's picture waits behind them: its place and the estimated wait show
        sign_up(page, "waiting")
        page.get_by_label("Describe a picture").fill("a purple triangle")
        page.get_by_label("Describe a picture").press("Enter")
        expect(page.locator("#run-status")).to_have_text(re.compile(r"Waiting in line: position \d+ · about \d+ s to wait"))
        expect(page.locator("#free-remaining")).to_have_text(str(FREE_DAILY_CREDITS - 1))
        screenshot(page, "create-queued")
        # 3. Cancel gives the credits back
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator("#run-status")).to_contain_text("Canceled")
        expect(page.locator("#free-remaining")).to_have_text(str(FREE_DAILY_CREDITS))
        expect(page.locator("#cancel")).to_be_hidden()
        expect(page.locator("#generate")).to_be_enabled()
        for job_id in long_jobs:
            premium.post(f"/api/v1/generations/{job_id}/cancel")


def _generate_during_the_finetune(browser, server, sign_up, screenshot) -> str:
    """Another user's picture, made while the fine-tune trains (`serve` runs a worker per
    queue); returns when it finished."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    other = context.new_page()
    try:
        sign_up(other, "meanwhile")
        other.get_by_label("Describe a picture").fill("a purple triangle")
        other.get_by_label("Describe a picture").press("Enter")
        expect(other.locator("#grid img")).to_have_count(1, timeout=JOB_TIMEOUT_MS)
        screenshot(other, "create-during-finetune")
        job_id = re.search(r"job=(\w+)", other.url).group(1)
        return other.evaluate("async (id) => (await (await fetch('/api/v1/generations/' + id)).json()).finished_at", job_id)
    finally:
        context.close()


def test_personalize_upload_finetune_and_status(page, browser, server, sign_up, screenshot, tmp_path) -> None:
    sign_up(page, "subject")
    page.get_by_role("link", name="Personalize").click()
    photos = face_photos(tmp_path, "smiley")
    not_a_photo = tmp_path / "notes.txt"
    not_a_photo.write_text("not a picture")

    # 1. previews before upload, a problem named per file, too few photos named
    page.get_by_label("Photos (3 to 5)").set_input_files([str(photos[0]), str(not_a_photo)])
    expect(page.locator("#previews li")).to_have_count(2)
    expect(page.locator("#previews li.has-problem")).to_contain_text("notes.txt")
    expect(page.locator("#previews li.has-problem")).to_contain_text("not an image")
    expect(page.locator("#images-error")).to_contain_text("Choose 3 to 5 photos")
    page.get_by_role("button", name="Remove notes.txt").click()
    # 2. what only the server can tell (a photo too small) is named on that photo too
    tiny = tmp_path / "tiny.png"
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (240, 210, 40)).save(buffer, "PNG")
    tiny.write_bytes(buffer.getvalue())
    page.get_by_label("Photos (3 to 5)").set_input_files([str(photos[1]), str(tiny)])
    expect(page.locator("#previews li img")).to_have_count(3)
    expect(page.locator("#previews li.has-problem")).to_have_count(0)
    expect(page.locator("#images-error")).to_be_hidden()
    page.get_by_label("What is it? (class noun)").fill("circle")
    page.get_by_label("Name").fill("Smiley")
    page.get_by_role("button", name=re.compile("Upload and start fine-tune")).click()
    expect(page.locator("#previews li.has-problem")).to_contain_text("too small")
    expect(page.locator("#previews li.has-problem")).to_contain_text("tiny.png")
    screenshot(page, "personalize-rejected")
    page.get_by_role("button", name="Remove tiny.png").click()
    page.get_by_label("Photos (3 to 5)").set_input_files([str(photos[2])])
    expect(page.locator("#previews li img")).to_have_count(3)
    expect(page.locator("#previews li.has-problem")).to_have_count(0)
    screenshot(page, "personalize")

    # 3. start: the status page shows the phase and progresses
    page.get_by_role("button", name=re.compile("Upload and start fine-tune")).click()
    page.wait_for_url(re.compile(r"/finetunes/[^/]+$"))
    expect(page.locator("#subject-name")).to_contain_text("Smiley")
    expect(page.locator("#phase")).not_to_have_text("…")
    # (meanwhile another user's generation does not wait for the fine-tune: it is done first)
    picture_done = _generate_during_the_finetune(browser, server, sign_up, screenshot)
    page.wait_for_function("document.getElementById('finetune').dataset.phase !== 'queued'", timeout=FINETUNE_TIMEOUT_MS)
    screenshot(page, "finetune-running")
    expect(page.locator("#validation img").first).to_be_visible(timeout=FINETUNE_TIMEOUT_MS)
    expect(page.locator("#status")).to_have_text("succeeded")
    expect(page.locator("#percent")).to_have_text("100%")
    page.wait_for_function("[...document.querySelectorAll('#validation img')].every((img) => img.complete && img.naturalWidth > 0)")
    screenshot(page, "finetune-done")
    # each scored checkpoint (every 30 of the 60 steps) and the one exported
    expect(page.locator("#checkpoint-rows tr")).to_have_count(2)
    expect(page.locator("#checkpoint-rows tr.chosen")).to_contain_text("60")
    expect(page.locator("#checkpoint-rows tr").first).to_contain_text("drift from base")
    finetune_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    finetune_done = page.evaluate("async (id) => (await (await fetch('/api/v1/finetunes/' + id)).json()).finished_at", finetune_id)
    assert datetime.fromisoformat(picture_done) < datetime.fromisoformat(finetune_done)

    # 4. generate with this subject: the prompt carries the token, the model is chosen
    use = page.get_by_role("link", name="Generate with this subject")
    expect(use).to_be_visible()
    use.click()
    page.wait_for_url(re.compile(r"/\?model="))
    expect(page.get_by_label("Describe a picture")).to_have_value(re.compile(r"^a \S+ circle"))
    prompt = page.get_by_label("Describe a picture").input_value()
    token = re.match(r"a (\S+) circle", prompt).group(1)
    selected = page.evaluate("document.getElementById('model').selectedOptions[0].textContent")
    assert token in selected and "Smiley" in selected


def test_credits_and_api_keys_pages(page, sign_up, screenshot) -> None:
    sign_up(page, "keys")
    page.get_by_role("link", name="Credits", exact=True).click()
    expect(page.locator("#payments-off")).to_contain_text("Payments are turned off")
    expect(page.locator("#packs .pack").first).to_be_visible()
    expect(page.locator("#packs button").first).to_be_disabled()
    expect(page.locator("#page-free")).to_have_text("6")
    screenshot(page, "credits")
    page.goto("/?purchase=canceled")  # where Stripe Checkout sends a buyer who backs out
    expect(page.get_by_role("heading", name="Purchase canceled")).to_be_visible()
    page.goto("/?purchase=success")
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    screenshot(page, "checkout-success")

    page.get_by_role("link", name="API keys", exact=True).click()
    page.get_by_label("Name").fill("my script")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("Your new API key")
    expect(key).to_have_value(re.compile(r"^ib_"))
    expect(page.locator("#keys tr")).to_have_count(1)
    expect(page.locator("#keys")).to_contain_text("my script")
    screenshot(page, "api-keys")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke my script").click()
    expect(page.locator("#keys tr")).to_have_count(0)
    page.reload()
    expect(page.locator("#no-keys")).to_be_visible()
    assert page.get_by_label("Your new API key").is_hidden()  # shown once


def test_api_docs_work_offline(page, server, screenshot) -> None:
    # Any request to another site fails, as it would on a machine without internet.
    outside: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto("/api/docs")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/generations").first).to_be_visible()
    screenshot(page, "api-docs")
    assert outside == []
