# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target web .     slim: FastAPI + Celery client, no torch
#   docker build --target worker .  the ML stack (torch, diffusers, Lightning)
# Both run from the source tree in /srv/imagebooth (templates, static and the bundled
# model live there); `python -m ...` puts it first on sys.path.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IMAGEBOOTH_DATA_DIR=/var/lib/imagebooth
RUN useradd --create-home --uid 1000 imagebooth \
    && mkdir -p /var/lib/imagebooth && chown imagebooth /var/lib/imagebooth
WORKDIR /srv/imagebooth

FROM base AS web
COPY pyproject.toml README.md ./
COPY app ./app
COPY workers/__init__.py workers/celery_app.py workers/system.py ./workers/
COPY migrations ./migrations
RUN pip install .
COPY alembic.ini ./
COPY templates ./templates
COPY static ./static
USER imagebooth
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
# Forwarded headers are believed only from IMAGEBOOTH_TRUSTED_PROXIES (default: none), in
# the app itself; uvicorn's own handling is off so that it cannot trust anyone else.
CMD ["python", "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]

FROM base AS worker
# torch first, pinned, so the ML extras resolve against it.
RUN pip install torch==2.13.0
COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
RUN pip install '.[ml]'
COPY models ./models
COPY templates ./templates
COPY static ./static
USER imagebooth
CMD ["python", "-m", "app.cli", "worker", "--queues", "inference"]
