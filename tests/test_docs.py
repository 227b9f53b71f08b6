"""The documents' links point at files that are in the repository (the model card once named
a document that was not)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.backend_independent
DOCUMENTS = ["README.md", "models/shapes-v1/README.md", "docs/SHAPES.md", "bench/README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_relative_links_resolve_inside_the_repository(document) -> None:
    path = REPO_ROOT / document
    targets = [target for target in LINK.findall(path.read_text()) if "://" not in target]
    missing = [target for target in targets if not (path.parent / target).resolve().exists()]
    outside = [target for target in targets if not (path.parent / target).resolve().is_relative_to(REPO_ROOT)]
    assert (missing, outside) == ([], [])


def test_the_model_card_names_no_document_outside_the_repository() -> None:
    card = (REPO_ROOT / "models" / "shapes-v1" / "README.md").read_text()
    assert "shared/" not in card
    for named in re.findall(r"`([\w./-]+\.md)`", card):
        assert (REPO_ROOT / named).exists() or (REPO_ROOT / "models" / "shapes-v1" / named).exists(), named
