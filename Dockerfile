# One image for web, workers, beat and flower (see compose.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STREAMGATE_VAR_DIR=/app/var \
    DJANGO_SETTINGS_MODULE=streamgate.settings.production

WORKDIR /app
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/prod.txt

COPY . .
RUN useradd --create-home --uid 1000 streamgate \
    && DJANGO_SECRET_KEY=build-only-collectstatic python manage.py collectstatic --noinput \
    && chown -R streamgate:streamgate /app/var
USER streamgate

EXPOSE 8000
CMD ["uvicorn", "streamgate.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--lifespan", "off", "--no-server-header", "--proxy-headers", "--forwarded-allow-ips", "*"]
