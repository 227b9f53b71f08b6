"""The hostile-input catalogue: every input Postgres or Python would refuse is refused first,
as a specific 4xx (422 naming the field, 404 for ids), never a 500. Runs on both backends:
on `real`, a NUL that got through would reach Postgres (which refuses NUL in text).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.personalization.upload_samples import files, good_photos

NUL, BELL, ESC, DEL, C1 = "\x00", "\x07", "\x1b", "\x7f", "\x85"
SURROGATE_JSON = '"a\\ud800b"'  # JSON text that decodes to a lone surrogate
NOT_AN_ID = ["%00", "%ED%A0%80", "x" * 300, "0123456789ABCDEF0123456789ABCDEF", "..%2F..%2Fetc", "%20"]
ID = "0123456789abcdef0123456789abcdef"  # well formed, owned by nobody


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int
    names: str | None = None  # the field a 422 must name
    kwargs: dict[str, Any] = field(default_factory=dict)
    anonymous: bool = False


def raw_json(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


def cursor_of(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def prompt_body(**values: Any) -> dict[str, Any]:
    return {"json": {"prompt": "a red circle"} | values}


CASES: dict[str, Case] = {}

# --- accounts, without logging in ---------------------------------------------------------
for label, value in {"NUL": NUL, "BEL": BELL, "ESC": ESC, "DEL": DEL, "C1 NEL": C1, "newline": "\n"}.items():
    CASES[f"signup email with {label}"] = Case("POST", "/api/v1/auth/signup", 422, "email",
                                               {"json": {"email": f"a{value}b@example.com", "password": "long enough"}}, True)
    CASES[f"login email with {label}"] = Case("POST", "/api/v1/auth/login", 422, "email",
                                              {"json": {"email": f"a{value}b@example.com", "password": "whatever"}}, True)
CASES |= {
    "signup password with NUL": Case("POST", "/api/v1/auth/signup", 422, "password",
                                     {"json": {"email": "a@example.com", "password": f"long{NUL}enough"}}, True),
    "signup password with a lone surrogate": Case(
        "POST", "/api/v1/auth/signup", 422, "password",
        raw_json('{"email": "a@example.com", "password": "long\\ud800enough"}'), True),
    "login password with a lone surrogate": Case(
        "POST", "/api/v1/auth/login", 422, "password", raw_json('{"email": "a@example.com", "password": "x\\udfff"}'), True),
    "login email with a lone surrogate": Case(
        "POST", "/api/v1/auth/login", 422, "email", raw_json('{"email": ' + SURROGATE_JSON + ', "password": "x"}'), True),
    "login email of 10,000 characters": Case("POST", "/api/v1/auth/login", 422, "email",
                                             {"json": {"email": "a" * 10_000, "password": "x"}}, True),
    "login email as a number": Case("POST", "/api/v1/auth/login", 422, "email",
                                    {"json": {"email": 10**30, "password": "x"}}, True),
    "login body a list": Case("POST", "/api/v1/auth/login", 422, "body", {"json": ["a@example.com", "x"]}, True),
    "login body not JSON": Case("POST", "/api/v1/auth/login", 422, "body", raw_json("{email: nope"), True),
    "login body invalid UTF-8": Case("POST", "/api/v1/auth/login", 400, None,
                                     {"content": b'{"email": "\xff\xfe", "password": "x"}',
                                      "headers": {"content-type": "application/json"}}, True),
    "login body nested 100,000 deep": Case("POST", "/api/v1/auth/login", 400, None,
                                           raw_json('{"email": ' + "[" * 100_000 + "]" * 100_000 + "}"), True),
    "form login email with NUL": Case("POST", "/login", 422, "email",
                                      {"data": {"email": f"a{NUL}@example.com", "password": "x", "csrf_token": "t"}}, True),
    "form signup password with ESC": Case("POST", "/signup", 422, "password",
                                          {"data": {"email": "a@example.com", "password": f"long{ESC}enough",
                                                    "csrf_token": "t"}}, True),
    "form login email invalid UTF-8 (percent-encoded)": Case(
        "POST", "/login", 401, None,
        {"content": b"email=a%ED%A0%80b&password=x&csrf_token=t",
         "headers": {"content-type": "application/x-www-form-urlencoded"}}, True),
}

# --- generations ----------------------------------------------------------------------------
CASES |= {
    "prompt with NUL": Case("POST", "/api/v1/generations", 422, "prompt", prompt_body(prompt=f"a red{NUL} circle")),
    "prompt with ESC": Case("POST", "/api/v1/generations", 422, "prompt", prompt_body(prompt=f"a red{ESC}[31m circle")),
    "prompt with a lone surrogate": Case("POST", "/api/v1/generations", 422, "prompt",
                                         raw_json('{"prompt": ' + SURROGATE_JSON + "}")),
    "prompt of whitespace": Case("POST", "/api/v1/generations", 422, "prompt", prompt_body(prompt=" \n\t ")),
    "prompt of 100,000 characters": Case("POST", "/api/v1/generations", 422, "prompt", prompt_body(prompt="a" * 100_000)),
    "negative prompt with NUL": Case("POST", "/api/v1/generations", 422, "negative_prompt",
                                     prompt_body(negative_prompt=f"blur{NUL}")),
    "model with NUL": Case("POST", "/api/v1/generations", 422, "model", prompt_body(model=f"shapes{NUL}")),
    "model with a lone surrogate": Case("POST", "/api/v1/generations", 422, "model",
                                        raw_json('{"prompt": "a red circle", "model": ' + SURROGATE_JSON + "}")),
    "n = 2**64": Case("POST", "/api/v1/generations", 422, "n", prompt_body(n=2**64)),
    "n = 1e400 (infinite)": Case("POST", "/api/v1/generations", 422, "n", raw_json('{"prompt": "a", "n": 1e400}')),
    "n of 5,000 digits": Case("POST", "/api/v1/generations", 400, None, raw_json('{"prompt": "a", "n": ' + "9" * 5000 + "}")),
    "n = -1": Case("POST", "/api/v1/generations", 422, "n", prompt_body(n=-1)),
    "n as a string": Case("POST", "/api/v1/generations", 422, "n", prompt_body(n="3")),
    "steps = 2**63": Case("POST", "/api/v1/generations", 422, "steps", prompt_body(steps=2**63)),
    "steps = 2.5": Case("POST", "/api/v1/generations", 422, "steps", prompt_body(steps=2.5)),
    "guidance NaN": Case("POST", "/api/v1/generations", 422, "guidance_scale",
                         raw_json('{"prompt": "a", "guidance_scale": NaN}')),
    "guidance Infinity": Case("POST", "/api/v1/generations", 422, "guidance_scale",
                              raw_json('{"prompt": "a", "guidance_scale": Infinity}')),
    "seed = 2**32": Case("POST", "/api/v1/generations", 422, "seed", prompt_body(seed=2**32)),
    "seed = -1": Case("POST", "/api/v1/generations", 422, "seed", prompt_body(seed=-1)),
    "unknown field": Case("POST", "/api/v1/generations", 422, "sampler", prompt_body(sampler="euler")),
    "body JSON null": Case("POST", "/api/v1/generations", 422, "body", raw_json("null")),
    "Idempotency-Key with a control character": Case(
        "POST", "/api/v1/generations", 422, "Idempotency-Key", prompt_body() | {"headers": {"Idempotency-Key": "k\x01"}}),
    "Idempotency-Key of 300 characters": Case(
        "POST", "/api/v1/generations", 422, "Idempotency-Key", prompt_body() | {"headers": {"Idempotency-Key": "k" * 300}}),
    "cursor with NUL": Case("GET", "/api/v1/generations", 422, "cursor", {"params": {"cursor": NUL}}),
    "cursor naming a NUL id": Case("GET", "/api/v1/generations", 422, "cursor",
                                   {"params": {"cursor": cursor_of(f"2026-01-01T00:00:00+00:00|{NUL}")}}),
    "cursor before year 1 in UTC": Case("GET", "/api/v1/generations", 422, "cursor",
                                        {"params": {"cursor": cursor_of(f"0001-01-01T00:00:00+14:00|{ID}")}}),
    "cursor after year 9999 in UTC": Case("GET", "/api/v1/generations", 422, "cursor",
                                          {"params": {"cursor": cursor_of(f"9999-12-31T23:59:59-14:00|{ID}")}}),
    "cursor not base64": Case("GET", "/api/v1/generations", 422, "cursor", {"params": {"cursor": "%%%"}}),
    "cursor of 1,000 characters": Case("GET", "/api/v1/generations", 422, "cursor", {"params": {"cursor": "a" * 1000}}),
    "limit = 10**30": Case("GET", "/api/v1/generations", 422, "limit", {"params": {"limit": str(10**30)}}),
    "limit = 0": Case("GET", "/api/v1/generations", 422, "limit", {"params": {"limit": "0"}}),
    "limit of 5,000 digits": Case("GET", "/api/v1/generations", 422, "limit", {"params": {"limit": "9" * 5000}}),
    "wait = nan": Case("GET", f"/api/v1/generations/{ID}", 422, "wait", {"params": {"wait": "nan"}}),
    "wait = inf": Case("GET", f"/api/v1/generations/{ID}", 422, "wait", {"params": {"wait": "inf"}}),
    "wait = -1": Case("GET", f"/api/v1/generations/{ID}", 422, "wait", {"params": {"wait": "-1"}}),
    "ledger cursor with NUL": Case("GET", "/api/v1/credits/ledger", 422, "cursor", {"params": {"cursor": NUL}}),
    "ledger cursor naming a NUL id": Case("GET", "/api/v1/credits/ledger", 422, "cursor",
                                          {"params": {"cursor": cursor_of(f"2026-01-01T00:00:00+00:00|{NUL}")}}),
    "ledger cursor after year 9999 in UTC": Case("GET", "/api/v1/credits/ledger", 422, "cursor",
                                                 {"params": {"cursor": cursor_of(f"9999-12-31T23:59:59-14:00|{ID}")}}),
    "activity cursor with NUL": Case("GET", "/api/v1/credits/activity", 422, "cursor", {"params": {"cursor": NUL}}),
    "activity cursor naming a NUL key": Case("GET", "/api/v1/credits/activity", 422, "cursor",
                                             {"params": {"cursor": cursor_of(f"2026-01-01T00:00:00+00:00|generation:{NUL}")}}),
    "ledger limit = 10**30": Case("GET", "/api/v1/credits/ledger", 422, "limit", {"params": {"limit": str(10**30)}}),
    "prompt list item with NUL": Case("POST", "/api/v1/generations", 422, "prompts.1",
                                      {"json": {"prompts": ["a red circle", f"a blue{NUL} star"]}}),
    "prompt list item with a lone surrogate": Case("POST", "/api/v1/generations", 422, "prompts.0",
                                                   raw_json('{"prompts": [' + SURROGATE_JSON + "]}")),
    "prompt list of 10,000 prompts": Case("POST", "/api/v1/generations", 422, "prompts", {"json": {"prompts": ["a"] * 10_000}}),
    "vocabulary check prompt with NUL": Case("POST", "/api/v1/vocabulary/check", 422, "prompt",
                                             {"json": {"prompt": f"a red{NUL} circle"}}),
    "vocabulary check class noun with a lone surrogate": Case("POST", "/api/v1/vocabulary/check", 422, "class_noun",
                                                              raw_json('{"class_noun": ' + SURROGATE_JSON + "}")),
    "webhook URL with NUL": Case("POST", "/api/v1/webhooks", 422, "url", {"json": {"url": f"https://example.com/{NUL}"}}),
    "webhook URL of 10,000 characters": Case("POST", "/api/v1/webhooks", 422, "url",
                                             {"json": {"url": "https://example.com/" + "a" * 10_000}}),
    "fine-tune list filter with NUL": Case("GET", "/api/v1/finetunes", 422, "subject_id", {"params": {"subject_id": NUL}}),
}

# --- ids in paths: 404, like a missing object -----------------------------------------------
ID_ROUTES = [
    ("GET", "/api/v1/generations/{}"), ("POST", "/api/v1/generations/{}/cancel"), ("GET", "/api/v1/generations/{}/archive"),
    ("GET", "/api/v1/images/{}"), ("GET", "/api/v1/subjects/{}"), ("POST", "/api/v1/subjects/{}/finetunes"),
    ("GET", "/api/v1/finetunes/{}"), ("POST", "/api/v1/finetunes/{}/cancel"), ("DELETE", "/api/v1/models/{}"),
    ("DELETE", "/api/v1/api-keys/{}"), ("GET", "/finetunes/{}"), ("DELETE", "/api/v1/webhooks/{}"),
    ("GET", "/api/v1/webhooks/{}/deliveries"),
]
for method, template in ID_ROUTES:
    CASES[f"{method} {template} with NUL"] = Case(method, template.format("%00"), 404)
for bad in NOT_AN_ID[1:]:
    CASES[f"generation id {bad[:20]!r}"] = Case("GET", f"/api/v1/generations/{bad}", 404)
CASES |= {
    "validation picture index of 30 digits": Case("GET", f"/finetunes/{ID}/validation/{10**30}", 404),
    "validation picture index -1": Case("GET", f"/finetunes/{ID}/validation/-1", 404),
    "validation picture index of 5,000 digits": Case("GET", f"/finetunes/{ID}/validation/{'9' * 5000}", 422, "index"),
}

# --- subjects, fine-tunes, API keys, checkout ------------------------------------------------
def subject_form(**fields: str) -> dict[str, Any]:
    return {"data": {"name": "my circle", "class_noun": "circle"} | fields, "files": files(good_photos(3))}


CASES |= {
    "subject name with NUL": Case("POST", "/api/v1/subjects", 422, "name", subject_form(name=f"my{NUL}circle")),
    "subject name with ESC": Case("POST", "/api/v1/subjects", 422, "name", subject_form(name=f"my{ESC}circle")),
    "subject name of 10,000 characters": Case("POST", "/api/v1/subjects", 422, "name", subject_form(name="n" * 10_000)),
    "class noun with NUL": Case("POST", "/api/v1/subjects", 422, "class_noun", subject_form(class_noun=f"cir{NUL}cle")),
    "class noun with digits": Case("POST", "/api/v1/subjects", 422, "class_noun", subject_form(class_noun="r2d2")),
    "images sent as text fields": Case("POST", "/api/v1/subjects", 422, "images.0",
                                       {"data": {"name": "x", "class_noun": "circle", "images": "not a file"}}),
    "fine-tune steps = 10**30": Case("POST", f"/api/v1/subjects/{ID}/finetunes", 422, "steps", {"json": {"steps": 10**30}}),
    "fine-tune unknown method": Case("POST", f"/api/v1/subjects/{ID}/finetunes", 422, "method", {"json": {"method": "magic"}}),
    "API key name with NUL": Case("POST", "/api/v1/api-keys", 422, "name", {"json": {"name": f"key{NUL}"}}),
    "API key name with a lone surrogate": Case("POST", "/api/v1/api-keys", 422, "name",
                                               raw_json('{"name": ' + SURROGATE_JSON + "}")),
    "API key name empty": Case("POST", "/api/v1/api-keys", 422, "name", {"json": {"name": ""}}),
    "checkout pack with a lone surrogate": Case("POST", "/api/v1/billing/checkout", 422, "pack",
                                                raw_json('{"pack": ' + SURROGATE_JSON + "}")),
    "subscribe plan with NUL": Case("POST", "/api/v1/billing/subscribe", 422, "plan", {"json": {"plan": f"pro{NUL}"}}),
    "subscribe plan with a lone surrogate": Case("POST", "/api/v1/billing/subscribe", 422, "plan",
                                                 raw_json('{"plan": ' + SURROGATE_JSON + "}")),
    "checkout pack with NUL": Case("POST", "/api/v1/billing/checkout", 422, "pack", {"json": {"pack": f"starter{NUL}"}}),
}

# --- headers the service reads ---------------------------------------------------------------
CASES |= {
    "Authorization with NUL and high bytes": Case("GET", "/api/v1/me", 401, None,
                                                  {"headers": {"Authorization": b"Bearer \xff\x00key"}}, True),
    "Authorization not a bearer": Case("GET", "/api/v1/me", 401, None, {"headers": {"Authorization": "Basic YTpi"}}, True),
    "session cookie forged": Case("GET", "/api/v1/me", 401, None, {"cookies": {"imagebooth_session": "x.y.z"}}, True),
    "CSRF token wrong": Case("POST", "/api/v1/generations", 403, None,
                             prompt_body() | {"headers": {"X-CSRF-Token": "not the cookie's"}}),
}


@pytest.fixture
def caller(make_client, accounts):
    browser = make_client()
    accounts.signup(browser)
    return browser


@pytest.mark.parametrize("name", CASES, ids=list(CASES))
def test_hostile_input_is_a_specific_4xx(name: str, caller, make_client, accounts) -> None:
    case = CASES[name]
    browser = make_client() if case.anonymous else caller
    kwargs = dict(case.kwargs)
    cookies = kwargs.pop("cookies", {})
    headers = dict(kwargs.pop("headers", {}))
    if not case.anonymous:
        headers = accounts.csrf(browser) | headers
    if case.path in ("/login", "/signup"):
        browser.cookies.set("imagebooth_csrf", "t")  # the form's token matches: only the field is wrong
    for cookie, value in cookies.items():
        browser.cookies.set(cookie, value)
    response = browser.request(case.method, case.path, headers=headers, **kwargs)
    assert response.status_code == case.status, response.text[:500]
    if case.status == 404 and case.path.startswith("/api/"):
        assert response.json()["error"]["code"] == "not_found"
    if case.names is not None:
        reported = response.json()["error"] if case.path.startswith("/api/") else None
        if reported is not None:
            assert case.names in {item["field"] for item in reported["fields"]}, reported
            assert reported["message"].startswith(case.names) or f"; {case.names}:" in reported["message"]
        else:
            assert case.names.split("_")[0] in response.text.lower()
