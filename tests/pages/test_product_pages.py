"""What a newcomer meets, in Chromium against a real server and worker: the model's vocabulary
next to the prompt and a confirm before credits go to words it does not know, a prompt list
(one picture per line), the prompt kept over a reload, the picture size stated, and Personalize
listing each subject's fine-tunes with links, training again only on purpose.

On the bundled model (its pictures take a tenth of a second each here), so the vocabulary is
its card's and the screenshots show what a newcomer sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from app.config import BUNDLED_MODEL_PATH
from tests.pages.conftest import Server, running_server
from tests.pages.test_browser import FINETUNE_TIMEOUT_MS, JOB_TIMEOUT_MS, face_photos

pytestmark = [pytest.mark.slow, pytest.mark.backend_independent]
UNKNOWN = "a cat astronaut on the moon"
LIST = ["a red circle", "a small blue star on the left", "a green square on a white background"]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("product"), model=BUNDLED_MODEL_PATH, FREE_DAILY_CREDITS="200",
                        RATE_LIMIT_JOBS_PER_USER="60/minute") as running:
        yield running


def _prompt(page):
    return page.get_by_label("Describe a picture")


def test_unknown_words_are_shown_and_confirmed_before_credits_are_spent(page, sign_up, screenshot) -> None:
    sign_up(page, "newcomer")
    # 1. what the model draws sits next to the prompt box
    panel = page.locator("#vocabulary")
    expect(panel).to_be_visible()
    expect(panel.locator("summary")).to_have_text("What shapes-v1 draws")
    expect(panel).to_contain_text("circle · square · triangle · star")
    # 2. the words it does not know are named while typing
    _prompt(page).fill(UNKNOWN)
    expect(page.locator("#prompt-words")).to_have_text("Not in this model's vocabulary: cat, astronaut, moon.")
    free = page.locator("#free-remaining").inner_text()
    # 3. Enter asks first; nothing is spent until the answer
    _prompt(page).press("Enter")
    confirm = page.locator("#confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text('"cat", "astronaut", "moon"')
    expect(page.locator("#confirm-go")).to_have_text("Generate anyway · 1 credit")
    expect(page.locator("#run")).to_be_hidden()
    screenshot(page, "create-vocabulary-warning")
    page.locator("#confirm-edit").click()
    expect(confirm).to_be_hidden()
    assert page.evaluate("document.activeElement.id") == "prompt"
    expect(page.locator("#free-remaining")).to_have_text(free)
    # 4. going ahead anyway generates
    _prompt(page).press("Enter")
    page.locator("#confirm-go").click()
    expect(page.locator("#grid img")).to_have_count(1, timeout=JOB_TIMEOUT_MS)
    # 5. a prompt in the model's words goes straight through
    _prompt(page).fill("a large purple triangle at the bottom")
    expect(page.locator("#prompt-words")).to_be_hidden()
    _prompt(page).press("Enter")
    expect(page.locator("#run")).to_be_visible()
    expect(confirm).to_be_hidden()


def test_a_prompt_list_draws_one_picture_per_line(page, sign_up, screenshot) -> None:
    sign_up(page, "lister")
    page.get_by_label("One prompt per line").check()
    _prompt(page).fill("\n".join(LIST))
    expect(page.locator("#generate")).to_have_text("Generate · 3 credits")
    expect(page.locator("#prompt-hint")).to_contain_text("Each line is one picture")
    _prompt(page).press("Control+Enter")
    expect(page.locator("#grid img")).to_have_count(3, timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#grid .image-prompt")).to_have_text(LIST)
    # the size the pictures really are is stated next to them
    expect(page.locator("#size-note")).to_contain_text("64×64 pixels")
    expect(page.locator("#grid figcaption").first).to_contain_text("64×64 px")
    page.wait_for_function("[...document.querySelectorAll('#grid img')].every((img) => img.complete && img.naturalWidth > 0)")
    screenshot(page, "create-prompt-list")
    # a reload shows the job with the prompts that drew it
    page.reload()
    expect(page.locator("#grid img")).to_have_count(3)
    expect(_prompt(page)).to_have_value("\n".join(LIST))
    expect(page.get_by_label("One prompt per line")).to_be_checked()
    # History lists the prompts and the size
    page.get_by_role("link", name="History").click()
    expect(page.locator(".history-item .prompts li")).to_have_text(LIST)
    expect(page.locator(".history-item").first).to_contain_text("3 pictures")
    expect(page.locator(".history-item").first).to_contain_text("64×64 px each")
    screenshot(page, "history-prompt-list")


def test_text_not_yet_sent_survives_a_reload_and_overlong_prompts_are_named(page, sign_up) -> None:
    sign_up(page, "drafter")
    _prompt(page).fill("a blue star on the right")
    page.reload()
    expect(_prompt(page)).to_have_value("a blue star on the right")
    _prompt(page).fill("a red circle " * 80)  # 1040 characters: never cut silently
    expect(page.locator("#prompt-length")).to_have_text("1040 of 1000 characters")
    _prompt(page).press("Enter")
    expect(page.locator("#prompt-error")).to_contain_text("1040 characters, 1000 at most")
    expect(page.locator("#run")).to_be_hidden()


def test_personalize_lists_fine_tunes_with_links_and_trains_again_only_on_purpose(
    page, server, sign_up, screenshot, tmp_path,
) -> None:
    sign_up(page, "trainer")
    page.get_by_role("link", name="Personalize").click()
    page.get_by_label("Photos (3 to 5)").set_input_files([str(photo) for photo in face_photos(tmp_path, "face")])
    # 1. the model's classes are offered; another noun is named, and asked about before training
    expect(page.locator("#class_noun-hint")).to_contain_text("circle, square, triangle, star")
    page.get_by_label("What is it? (class noun)").fill("dog")
    expect(page.locator("#class_noun-words")).to_contain_text('not "dog"')
    page.get_by_label("Name").fill("Rover")
    page.get_by_role("button", name=re.compile("Upload and start fine-tune")).click()
    expect(page.locator("#confirm")).to_contain_text("will likely draw it badly")
    screenshot(page, "personalize-class-warning")
    page.locator("#confirm-edit").click()
    page.get_by_label("What is it? (class noun)").fill("circle")
    page.get_by_role("button", name=re.compile("Upload and start fine-tune")).click()
    page.wait_for_url(re.compile(r"/finetunes/[^/]+$"))
    finetune_url = page.url
    expect(page.locator("#status")).to_have_text("succeeded", timeout=FINETUNE_TIMEOUT_MS)
    expect(page.locator("#validation")).to_contain_text("pixels, shown enlarged")
    screenshot(page, "finetune-done-size")
    # 2. the subject lists its fine-tune, with links to its status page and its model
    page.get_by_role("link", name="Personalize").click()
    row = page.locator("#subjects li[data-subject]")
    expect(row).to_have_count(1)
    expect(row.locator(".finetunes li")).to_have_count(1)
    expect(row.locator(".finetunes li")).to_contain_text("done")
    status_link = row.get_by_role("link", name=re.compile("Fine-tune of"))
    assert server.url + status_link.get_attribute("href") == finetune_url
    expect(row.get_by_role("link", name="use its model")).to_have_attribute("href", re.compile(r"^/\?model="))
    # 3. "train again" asks first, names the cost, and can be backed out of
    expect(row.get_by_role("button", name=re.compile("Start fine-tune"))).to_have_count(0)
    row.get_by_role("button", name="Train again…").click()
    expect(row).to_contain_text("A new fine-tune of Rover costs 3 credits")
    expect(row.get_by_role("button", name="Train again · 3 credits")).to_be_visible()
    screenshot(page, "personalize-train-again")
    row.get_by_role("button", name="Keep what I have").click()
    expect(row.get_by_role("button", name="Train again…")).to_be_visible()
    expect(row.locator(".finetunes li")).to_have_count(1)  # nothing was started
    screenshot(page, "personalize-subjects")
    # 4. a personal model picked from a link is shown, not hidden under the folded options
    row.get_by_role("link", name="use its model").click()
    expect(_prompt(page)).to_have_value("a sks circle")
    expect(page.locator("#options")).to_have_attribute("open", "")
    expect(page.locator("#vocabulary")).to_contain_text("Plus your subject")
    screenshot(page, "create-personal-model")
