"""POST/GET /api/v1/subjects: photos checked by content; bad input stores nothing."""

from __future__ import annotations

import pytest
from personalization_checks import stored_uploads
from PIL import Image
from upload_samples import files, good_photos, oversized, photo, png_bomb, truncated_jpeg

from app.config import MEBIBYTE


def test_upload_creates_subject_with_token_and_private_upright_photos(client, user, create_subject, db) -> None:
    photos = good_photos(2) + [("sideways.jpg", photo(5, size=(120, 80), fmt="JPEG", exif_orientation=6))]
    response = create_subject(photos, name="  My   circle ", class_noun="Circle")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "My circle" and body["class_noun"] == "circle" and body["token"] == "sks"
    assert body["photo_count"] == 3
    # stored under the user's own folder, re-encoded upright (EXIF orientation 6 = 90 degrees)
    stored = stored_uploads()
    assert len(stored) == 3 and all(f"uploads/{user['id']}/subjects/{body['id']}/" in p.as_posix() for p in stored)
    assert sorted(Image.open(p).size for p in stored) == [(80, 120), (96, 96), (96, 96)]
    assert all(p.stat().st_mode & 0o077 == 0 for p in stored)  # readable by the service alone
    # never served: no route maps storage
    assert client.get(f"/static/../storage/{stored[0].name}").status_code == 404


def test_each_subject_of_a_user_gets_its_own_token(create_subject) -> None:
    first = create_subject(good_photos(3)).json()
    second = create_subject(good_photos(4), name="Other").json()
    assert first["token"] != second["token"]


def test_list_and_get_show_only_own_subjects(client, make_client, accounts, create_subject) -> None:
    mine = create_subject().json()
    listed = client.get("/api/v1/subjects").json()["items"]
    assert [s["id"] for s in listed] == [mine["id"]]
    assert client.get(f"/api/v1/subjects/{mine['id']}").json()["token"] == mine["token"]
    other = make_client()
    accounts.signup(other)
    assert other.get("/api/v1/subjects").json()["items"] == []
    assert other.get(f"/api/v1/subjects/{mine['id']}").status_code == 404


def test_subjects_need_authentication(make_client) -> None:
    anonymous = make_client()
    assert anonymous.get("/api/v1/subjects").status_code == 401
    response = anonymous.post("/api/v1/subjects", data={"name": "x", "class_noun": "circle"}, files=files(good_photos(3)))
    assert response.status_code == 401


BAD_UPLOADS = {
    "two photos": (lambda: good_photos(2), "images: send 3 to 5 photos (got 2)"),
    "six photos": (lambda: good_photos(6), "images: send 3 to 5 photos (got 6)"),
    "text named .jpg": (lambda: good_photos(2) + [("notes.jpg", b"just some text, not a picture\n")],
                        "notes.jpg: not an image"),
    "truncated JPEG": (lambda: good_photos(2) + [("cut.jpg", truncated_jpeg())], "cut.jpg: the image is truncated"),
    "20 MB file": (lambda: good_photos(2) + [("huge.png", oversized(20 * MEBIBYTE))], "huge.png: too large"),
    "10000x10000 PNG bomb": (lambda: good_photos(2) + [("bomb.png", png_bomb())],
                             "bomb.png: too many pixels (10000x10000"),
    "32x32 photo": (lambda: good_photos(2) + [("tiny.png", photo(4, size=(32, 32)))], "tiny.png: too small: 32x32"),
    "same photo twice": (lambda: good_photos(2) + [("again.png", photo(0))], "again.png: the same photo as photo0.png"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
def test_bad_photos_are_refused_with_a_reason_per_file_and_nothing_stored(case, create_subject, nothing_stored) -> None:
    make_photos, expected = BAD_UPLOADS[case]
    response = create_subject(make_photos())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert expected in error["message"]
    nothing_stored()


def test_every_bad_file_is_named_at_once(create_subject, nothing_stored) -> None:
    response = create_subject([("a.png", photo(0)), ("b.jpg", b"text"), ("c.png", photo(1, size=(40, 200)))])
    files_reported = {item["file"]: item["reason"] for item in response.json()["error"]["files"]}
    assert set(files_reported) == {"b.jpg", "c.png"}
    assert "not an image" in files_reported["b.jpg"] and "too small" in files_reported["c.png"]
    nothing_stored()


@pytest.mark.parametrize(
    ("name", "class_noun", "expected"),
    [
        ("Rex", "", "class_noun: is required"),
        ("Rex", None, "class_noun: is required"),
        ("Rex", "dog!", "class_noun: must be 1-40 characters of letters, spaces and hyphens"),
        ("Rex", "<script>", "class_noun: must be"),
        ("Rex", "r2d2", "class_noun: must be"),
        ("Rex", "a" * 41, "class_noun: must be"),
        ("", "dog", "name: is required"),
        (None, "dog", "name: is required"),
    ],
)
def test_bad_fields_are_refused_and_nothing_stored(name, class_noun, expected, create_subject, nothing_stored) -> None:
    response = create_subject(name=name, class_noun=class_noun)
    assert response.status_code == 422, response.text
    assert expected in response.json()["error"]["message"]
    nothing_stored()


def test_class_nouns_of_words_and_hyphens_are_fine(create_subject) -> None:
    response = create_subject(class_noun="Teddy  bear")
    assert response.status_code == 201 and response.json()["class_noun"] == "teddy bear"
    assert create_subject(good_photos(4), class_noun="t-shirt").status_code == 201
