"""The pages as the server renders them (no browser): forms, redirects, the header's
credits, field errors, 404s. The browser tests (test_browser.py) drive the scripts."""

from __future__ import annotations

import re

HTML = {"accept": "text/html"}


def _form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "form has no CSRF token"
    return match.group(1)


def test_home_redirects_to_login_when_logged_out(client) -> None:
    response = client.get("/", headers=HTML, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_signup_form_logs_in_and_home_shows_email_and_credits(client) -> None:
    page = client.get("/signup", headers=HTML)
    token = _form_token(page.text)
    response = client.post("/signup", data={"email": "page@example.com", "password": "long enough", "csrf_token": token})
    assert response.status_code == 200  # followed the 303 to /
    assert 'id="who">page@example.com<' in response.text
    assert re.search(r'id="balance">0<', response.text) and re.search(r'id="free-remaining">25<', response.text)


def test_login_form_with_wrong_password_shows_message(client, make_client, accounts) -> None:
    accounts.signup(client, "form@example.com")
    browser = make_client()
    token = _form_token(browser.get("/login", headers=HTML).text)
    response = browser.post("/login", data={"email": "form@example.com", "password": "wrong password", "csrf_token": token})
    assert response.status_code == 401
    assert "The email or password is incorrect." in response.text


def test_login_form_then_logout(client, make_client, accounts) -> None:
    accounts.signup(client, "form@example.com")
    browser = make_client()
    token = _form_token(browser.get("/login", headers=HTML).text)
    home = browser.post("/login", data={"email": "form@example.com", "password": "correct horse battery", "csrf_token": token})
    assert "form@example.com" in home.text
    logout = browser.post("/logout", data={"csrf_token": _form_token(home.text)}, follow_redirects=False)
    assert logout.status_code == 303
    assert browser.get("/", headers=HTML, follow_redirects=False).status_code == 303


def test_signup_form_reports_invalid_fields(client) -> None:
    token = _form_token(client.get("/signup", headers=HTML).text)
    response = client.post("/signup", data={"email": "nope", "password": "short", "csrf_token": token})
    assert response.status_code == 422
    # each reason next to its own field, not one line above the form
    assert re.search(r'id="email-error">Enter an email address', response.text)
    assert re.search(r'id="password-error">Use at least 8 characters', response.text)
    assert 'aria-invalid="true"' in response.text


def test_signup_with_a_taken_email_says_so_next_to_the_email(client, make_client, accounts) -> None:
    accounts.signup(client, "taken@example.com")
    browser = make_client()
    token = _form_token(browser.get("/signup", headers=HTML).text)
    response = browser.post("/signup", data={"email": "taken@example.com", "password": "long enough", "csrf_token": token})
    assert response.status_code == 409
    assert re.search(r'id="email-error">An account with this email already exists', response.text)
    assert 'value="taken@example.com"' in response.text


def test_unknown_page_is_an_html_404(client) -> None:
    response = client.get("/no/such/page", headers=HTML)
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]


def test_static_css_is_served(client) -> None:
    assert client.get("/static/style.css").status_code == 200


PRODUCT_PAGES = ["/", "/history", "/personalize", "/credits", "/credits/success", "/credits/cancel", "/api-keys"]


def test_every_product_page_needs_a_login(client) -> None:
    for path in PRODUCT_PAGES + ["/finetunes/some-id"]:
        response = client.get(path, headers=HTML, follow_redirects=False)
        assert (response.status_code, response.headers.get("location")) == (303, "/login"), path


def test_every_product_page_has_the_nav_and_the_credits_in_its_header(client, accounts) -> None:
    accounts.signup(client, "header@example.com")
    for path in PRODUCT_PAGES:
        response = client.get(path, headers=HTML)
        assert response.status_code == 200, path
        assert 'id="free-remaining">25<' in response.text and 'id="balance">0<' in response.text, path
        assert 'id="free-resets-at"' in response.text and 'href="/history"' in response.text, path
        assert 'name="csrf_token"' in response.text, path  # the logout form


def test_create_page_shows_the_cost_and_focuses_the_prompt(client, accounts, env_override) -> None:
    env_override(IMAGE_CREDIT_COST="2")
    accounts.signup(client)
    page = client.get("/", headers=HTML).text
    assert 'data-image-cost="2"' in page and ">2 credits<" in page
    assert re.search(r'<textarea id="prompt"[^>]*autofocus', page)
    # every input has a label
    for input_id in re.findall(r'<(?:input|select|textarea) id="([^"]+)"', page):
        assert f'for="{input_id}"' in page, input_id


def test_credits_page_says_when_payments_are_off(client, accounts) -> None:
    accounts.signup(client)
    page = client.get("/credits", headers=HTML).text
    assert 'id="payments-off"' in page and "Payments are turned off" in page


def test_someone_elses_finetune_page_is_a_404_page_without_a_trace(client, accounts) -> None:
    accounts.signup(client)
    response = client.get("/finetunes/not-mine", headers=HTML)
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]
    assert "Traceback" not in response.text and "Fine-tune not found." in response.text
    picture = client.get("/finetunes/not-mine/validation/0", headers=HTML)
    assert picture.status_code == 404


def test_static_files_are_served_and_need_no_cdn(client) -> None:
    for name in ("app.js", "create.js", "history.js", "personalize.js", "finetune.js", "credits.js", "api_keys.js", "style.css"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert "https://" not in response.text and "http://" not in response.text, name
    assert "image-rendering: pixelated" in client.get("/static/style.css").text


def test_login_and_signup_pages_send_a_logged_in_user_home(client, accounts) -> None:
    accounts.signup(client)
    for path in ("/login", "/signup"):
        response = client.get(path, headers=HTML, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/"), path


def test_favicon_is_an_icon(client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # the ICO header
    assert '<link rel="icon" href="/favicon.ico"' in client.get("/login", headers=HTML).text
