"""The minimal browser pages: sign up, log in, see email and credits, log out."""

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
    assert 'id="email">page@example.com<' in response.text
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
    assert "email:" in response.text and "password:" in response.text


def test_unknown_page_is_an_html_404(client) -> None:
    response = client.get("/no/such/page", headers=HTML)
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]


def test_static_css_is_served(client) -> None:
    assert client.get("/static/style.css").status_code == 200
