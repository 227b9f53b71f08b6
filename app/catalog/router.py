"""Model catalog routes: list the models a caller may use, delete one's own, check words."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, BackgroundTasks, Response, status

from app.auth.dependencies import CurrentUser
from app.catalog import service
from app.catalog.schemas import ModelOut, ModelPrices, VocabularyCheck, VocabularyChecked, VocabularyOut, WarningOut
from app.db import SessionDep
from app.openapi import errors
from app.validation import ModelId

router = APIRouter(prefix="/api/v1", tags=["models"])


@router.get("/models")
def list_models(user: CurrentUser, session: SessionDep) -> list[ModelOut]:
    return [
        ModelOut.model_validate(listed.row, from_attributes=True).model_copy(update={
            "cost_per_picture": ModelPrices(**listed.prices), "vocabulary": VocabularyOut.of(listed.vocabulary)})
        for listed in service.models_with_prices(session, user)
    ]


@router.post("/vocabulary/check", responses=errors(404))
def check_vocabulary(body: VocabularyCheck, user: CurrentUser, session: SessionDep) -> VocabularyChecked:
    """The warnings a generation (or a subject's class noun) would get, before anything is spent."""
    as_list = body.prompts is not None
    prompts = body.prompts if body.prompts is not None else [body.prompt] if body.prompt is not None else []
    hints = service.vocabulary_hints(session, user, body.model, prompts, as_list, body.class_noun)
    return VocabularyChecked(warnings=WarningOut.of(hints))


@router.delete("/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(model_id: ModelId, user: CurrentUser, session: SessionDep, background: BackgroundTasks) -> Response:
    folder = service.delete_model(session, user, model_id)
    if folder is not None:
        # Background tasks run after the response, so after the request's commit: files are
        # removed only once no row points at them any more.
        background.add_task(shutil.rmtree, folder, ignore_errors=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
