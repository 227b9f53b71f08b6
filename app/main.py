"""The web application. `create_app()` is the uvicorn factory (`--factory`).

Imports stay light: no torch, no diffusers, no workers.engine - the web process sends tasks
by name and starts in well under a second.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.auth.router import router as auth_router
from app.billing.router import router as billing_router
from app.body_limit import BodySizeLimitMiddleware
from app.catalog.router import router as catalog_router
from app.config import Settings, get_settings
from app.credits.router import router as credits_router
from app.errors import install_error_handlers
from app.generation.router import router as generation_router
from app.health import router as health_router
from app.pages.rendering import STATIC_DIR
from app.pages.router import router as pages_router
from app.personalization.router import router as personalization_router
from app.ratelimit import RateLimitMiddleware


def create_app(settings: Settings | None = None) -> FastAPI:
    # 1. settings: read (and validated) now, so a bad production config fails at start-up
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level.upper())
    app = FastAPI(title="ImageBooth", version="1", docs_url="/api/docs", openapi_url="/api/openapi.json")
    # 2. errors and request limits
    install_error_handlers(app)
    # Added first, so it runs inside the body limit: it may read a (bounded) login body.
    app.add_middleware(RateLimitMiddleware, settings=settings)
    app.add_middleware(BodySizeLimitMiddleware, settings=settings)
    # 3. routes
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(generation_router)
    app.include_router(catalog_router)
    app.include_router(pages_router)
    app.include_router(personalization_router)
    app.include_router(credits_router)
    app.include_router(billing_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
