"""The web application. `create_app()` is the uvicorn factory (`--factory`).

Imports stay light: no torch, no diffusers, no workers.engine - the web process sends tasks
by name and starts in well under a second.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.auth.router import router as auth_router
from app.billing.router import router as billing_router
from app.body_limit import BodySizeLimitMiddleware
from app.catalog.router import router as catalog_router
from app.config import Settings, get_settings
from app.credits.router import router as credits_router
from app.errors import install_error_handlers
from app.generation.router import router as generation_router
from app.health import router as health_router
from app.openapi import install as install_openapi
from app.pages.rendering import STATIC_DIR
from app.pages.router import router as pages_router
from app.personalization.router import router as personalization_router
from app.ratelimit import RateLimiter, RateLimitMiddleware
from app.webhooks.router import events as webhook_events
from app.webhooks.router import router as webhooks_router

OPENAPI_URL = "/api/openapi.json"
SWAGGER_ASSETS = "/static/swagger-ui"


def create_app(settings: Settings | None = None) -> FastAPI:
    # 1. settings: read (and validated) now, so a bad production config fails at start-up
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level.upper())
    # The interactive docs are served by `_docs` below, from our own static files.
    app = FastAPI(title="ImageBooth", version="1", docs_url=None, redoc_url=None, openapi_url=OPENAPI_URL)
    # 2. errors and request limits (the last added runs first)
    install_error_handlers(app)
    app.state.rate_limiter = RateLimiter(settings) if settings.rate_limits_enabled else None
    app.add_middleware(RateLimitMiddleware, settings=settings, limiter=app.state.rate_limiter)
    app.add_middleware(BodySizeLimitMiddleware, settings=settings)
    if settings.trusted_proxies:
        # Outermost, so the rate limits key on the client the trusted proxy names.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    # 3. routes
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(generation_router)
    app.include_router(catalog_router)
    app.include_router(pages_router)
    app.include_router(personalization_router)
    app.include_router(credits_router)
    app.include_router(billing_router)
    app.include_router(webhooks_router)
    app.webhooks.include_router(webhook_events)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_api_route("/api/docs", _docs, include_in_schema=False, response_class=HTMLResponse)
    install_openapi(app)
    return app


def _docs() -> HTMLResponse:
    # Swagger UI from static/swagger-ui (vendored, with its licence): works offline.
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL, title="ImageBooth API",
        swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon-32x32.png",
    )
