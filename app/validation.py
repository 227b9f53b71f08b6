"""The one rule for text the service accepts, as pydantic types every schema and form uses.

Whatever a database or Python would refuse later is refused here, at the edge, as a 422
naming the field: Postgres stores no NUL in text, UTF-8 cannot encode a lone surrogate
(JSON's "\\ud800" decodes to one), and other control characters are never meant in a name
or an email and only break logs and file names. Multi-line text (prompts) may keep tabs
and line breaks.

Ids in paths are refused as 404 instead, because to the caller an id that cannot exist is
an object that does not exist.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

LINE_BREAKS_AND_TABS = frozenset("\t\n\r")
# Every id the service hands out is 32 lower-case hex characters (app.model_base.new_id).
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
ID_NOT_FOUND = "id_not_found"


def text_problem(value: str, multiline: bool = False) -> str | None:
    """Why `value` is not text the service can store, or None when it is."""
    for character in value:
        category = unicodedata.category(character)
        if category == "Cs":
            return f"must not contain a lone surrogate (U+{ord(character):04X}); send valid Unicode"
        if category == "Cc" and not (multiline and character in LINE_BREAKS_AND_TABS):
            return f"must not contain the control character U+{ord(character):04X}"
    return None


def _check(multiline: bool):
    def check(value: str) -> str:
        problem = text_problem(value, multiline)
        if problem is not None:
            raise PydanticCustomError("text_invalid", problem)
        return value

    return check


def _id_of(what: str):
    def check(value: str) -> str:
        if not ID_PATTERN.match(value):
            raise PydanticCustomError(ID_NOT_FOUND, "{what} not found", {"what": what})
        return value

    return check


def is_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


def printable(value: str) -> str:
    """`value` without the characters the rule refuses, for echoing it in a message."""
    return "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cs"))


# One line of text: names, emails, passwords, keys, cursors, header values.
Line = Annotated[str, AfterValidator(_check(multiline=False))]
# Text that may span lines: prompts.
Text = Annotated[str, AfterValidator(_check(multiline=True))]
# Ids in paths: anything that is not an id answers 404 (app.errors), as a missing object does.
GenerationId = Annotated[str, AfterValidator(_id_of("generation"))]
ImageId = Annotated[str, AfterValidator(_id_of("image"))]
SubjectId = Annotated[str, AfterValidator(_id_of("subject"))]
FinetuneId = Annotated[str, AfterValidator(_id_of("fine-tune"))]
ModelId = Annotated[str, AfterValidator(_id_of("model"))]
ApiKeyId = Annotated[str, AfterValidator(_id_of("API key"))]
WebhookId = Annotated[str, AfterValidator(_id_of("webhook"))]
