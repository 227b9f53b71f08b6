"""Browser pages, part two: the product (create, history, personalize, credits, API keys).

The pages are shells: the server renders the layout, the header's credits and the few
numbers a script cannot ask the API for (prices per image); the scripts in `static/`
do everything else through the public JSON API, exactly as any other client would.
The one exception is the fine-tune's validation pictures, which the API does not serve
yet: they are read here, for the owner only, from the personal model's card.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from app import storage
from app.auth.dependencies import OptionalUser
from app.auth.models import User
from app.billing import service as billing_service
from app.config import get_settings
from app.credits import service as credits_service
from app.db import SessionDep
from app.errors import NotFound
from app.model_base import JobStatus
from app.models import TrainedModel
from app.pages.rendering import render
from app.personalization import service as personalization_service
from app.validation import FinetuneId, is_id

router = APIRouter(include_in_schema=False)
CHECKOUT_RETURNS = {"success": "/credits/success", "canceled": "/credits/cancel"}


def _login_redirect() -> Response:
    return RedirectResponse("/login", status_code=303)


def _page(request: Request, session, user: User, template: str, page: str, **context: Any) -> Response:
    settings = get_settings()
    return render(
        request, template,
        user=user, page=page, credits=credits_service.summary(session, user),
        image_cost=settings.image_credit_cost, finetune_cost=settings.finetune_credit_cost,
        payments_enabled=billing_service.payments_enabled(settings), **context,
    )


@router.get("/")
def create_page(request: Request, user: OptionalUser, session: SessionDep) -> Response:
    if user is None:
        return _login_redirect()
    # Stripe Checkout sends buyers back to /?purchase=success|canceled (app/billing).
    purchase = request.query_params.get("purchase")
    if purchase in CHECKOUT_RETURNS:
        return RedirectResponse(CHECKOUT_RETURNS[purchase], status_code=303)
    return _page(request, session, user, "create.html", "create")


@router.get("/history")
def history_page(request: Request, user: OptionalUser, session: SessionDep) -> Response:
    if user is None:
        return _login_redirect()
    return _page(request, session, user, "history.html", "history")


@router.get("/personalize")
def personalize_page(request: Request, user: OptionalUser, session: SessionDep) -> Response:
    if user is None:
        return _login_redirect()
    return _page(request, session, user, "personalize.html", "personalize",
                 max_upload_bytes=get_settings().max_upload_bytes)


@router.get("/finetunes/{finetune_id}")
def finetune_page(finetune_id: str, request: Request, user: OptionalUser, session: SessionDep) -> Response:
    if user is None:
        return _login_redirect()  # before anything about the id is said
    if not is_id(finetune_id):
        raise NotFound("fine-tune")
    finetune = personalization_service.own_finetune(session, user, finetune_id)  # 404 page for others
    return _page(request, session, user, "finetune.html", "personalize",
                 finetune_id=finetune.id, validation=_validation_pictures(session, finetune))


@router.get("/finetunes/{finetune_id}/validation/{index}")
def validation_picture(finetune_id: FinetuneId, index: int, user: OptionalUser, session: SessionDep) -> Response:
    if user is None:
        raise NotFound("picture")
    finetune = personalization_service.own_finetune(session, user, finetune_id)
    pictures = _validation_pictures(session, finetune)
    if not 0 <= index < len(pictures):
        raise NotFound("picture")
    return FileResponse(pictures[index]["path"], media_type="image/png")


def _validation_pictures(session, finetune) -> list[dict[str, Any]]:
    """The pictures the fine-tune drew at its end, listed in its model card."""
    if finetune.status != JobStatus.SUCCEEDED or not finetune.trained_model_id:
        return []
    model = session.get(TrainedModel, finetune.trained_model_id)
    if model is None:  # the user deleted the model since
        return []
    folder = storage.resolve(model.path)
    pictures: list[dict[str, Any]] = []
    for entry in (model.metrics or {}).get("validation", []):
        path = (folder / entry["file"]).resolve()
        if path.is_relative_to(folder.resolve()) and path.is_file():
            pictures.append({"prompt": entry["prompt"], "path": path, "size": _picture_size(path),
                             "url": f"/finetunes/{finetune.id}/validation/{len(pictures)}"})
    return pictures


def _picture_size(path) -> tuple[int, int] | None:
    """(width, height) from the PNG's header, so the page can say how big a picture really is."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError):
        return None


@router.get("/credits")
def credits_page(request: Request, user: OptionalUser, session: SessionDep) -> Response:
    if user is None:
        return _login_redirect()
    return _page(request, session, user, "credits.html", "credits")


@router.get("/credits/success")
def checkout_success_page(request: Request, user: OptionalUser, session: SessionDep) -> Response:
    if user is None:
        return _login_redirect()
    return _page(request, session, user, "checkout_return.html", "credits", outcome="success")


@router.get("/credits/cancel")
def checkout_cancel_page(request: Request, user: OptionalUser, session: SessionDep) -> Response:
    if user is None:
        return _login_redirect()
    return _page(request, session, user, "checkout_return.html", "credits", outcome="cancel")


@router.get("/api-keys")
def api_keys_page(request: Request, user: OptionalUser, session: SessionDep) -> Response:
    if user is None:
        return _login_redirect()
    return _page(request, session, user, "api_keys.html", "api-keys")
