from django.apps import AppConfig


class WebConfig(AppConfig):
    """The top layer: what a person uses and that composes every app. The web UI's pages
    (views.py) and the ``ingest`` command (upload, encode, then print playback URLs). No models;
    no app imports it."""

    name = "apps.web"
    label = "web"
    verbose_name = "Web UI"
