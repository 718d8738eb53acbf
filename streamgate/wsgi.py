"""WSGI entry point, for tools that want one; StreamGate is served by uvicorn through asgi.py
(websockets and streamed upload bodies need ASGI)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamgate.settings.production")

application = get_wsgi_application()
