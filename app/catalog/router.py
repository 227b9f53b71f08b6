"""Model catalog routes: list the models a caller may use, delete one's own, check words."""

from __future__ import annotations

import shutil
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Response, status
from fastapi.responses import FileResponse, StreamingResponse

from app.auth.dependencies import CurrentUser
from app.catalog import service
from app.catalog.downloads import DownloadFormat, model_download
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


_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get("/models/{model_id}/download", response_class=Response, responses={
    200: {"description": "The model's weights: a `.safetensors` file (a LoRA) or a zip of a diffusers folder",
          "content": {"application/octet-stream": _BINARY, "application/zip": _BINARY}},
    **errors(404, 409, 410)})
def download_model(model_id: ModelId, user: CurrentUser, session: SessionDep,
                   format: Annotated[DownloadFormat, Query(description="diffusers (as trained) or kohya (A1111)")]
                   = "diffusers") -> Response:
    """One of the caller's own personal models, to use elsewhere (see app/catalog/downloads.py)."""
    download = model_download(session, user, model_id, format)
    if download.path is not None:
        return FileResponse(download.path, media_type=download.media_type, filename=download.file_name)
    return StreamingResponse(download.chunks(), media_type=download.media_type,
                             headers={"Content-Disposition": f'attachment; filename="{download.file_name}"'})
