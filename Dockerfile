# One image for web, workers, beat and flower (see compose.yaml).

# The web UI's browser packages from npm (what `make` copies into static/dist/).
FROM node:20-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error \
    && mkdir dist \
    && cp node_modules/tus-js-client/dist/tus.min.js node_modules/hls.js/dist/hls.min.js \
          node_modules/js-sha3/build/sha3.min.js dist/

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STREAMGATE_VAR_DIR=/app/var \
    DJANGO_SETTINGS_MODULE=streamgate.settings.production

WORKDIR /app
# pg_dump and pg_restore for `manage.py backup` / `restore` (bookworm's: 15, as compose's server).
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/prod.txt

COPY . .
COPY --from=assets /src/dist/ static/dist/
RUN useradd --create-home --uid 1000 streamgate \
    && mkdir -p /app/var/prometheus \
    && DJANGO_SECRET_KEY=build-only-collectstatic STREAMGATE_PUBLIC_URL=https://build.invalid \
       python manage.py collectstatic --noinput \
    && chown -R streamgate:streamgate /app/var
USER streamgate

EXPOSE 8000
CMD ["uvicorn", "streamgate.asgi:application", "--http", "streamgate.http_protocol:HttpProtocol", \
     "--host", "0.0.0.0", "--port", "8000", \
     "--lifespan", "off", "--no-server-header", "--no-proxy-headers", \
     "--timeout-graceful-shutdown", "20"]
