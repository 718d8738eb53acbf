"""WSGI entry point, for tools that want one; StreamGate is served by uvicorn through asgi.py
(websockets and streamed upload bodies need ASGI)."""

import os

from django.core.wsgi import get_wsgi_application

from streamgate.tracing import tracing_configure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamgate.settings.production")

tracing_configure(service="streamgate-web")  # before the handler loads Django's middleware
application = get_wsgi_application()
