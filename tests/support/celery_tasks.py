"""Tasks for the routing tests, named like each app's tasks so the real routes apply to them.

A worker started with ``--include tests.support.celery_tasks`` registers them.
"""

from celery import shared_task


def _delivery(request) -> dict:
    return {
        "routing_key": request.delivery_info.get("routing_key"),
        "hostname": request.hostname,
        "args": list(request.args),
    }


@shared_task(bind=True, name="apps.uploads.tasks.routing_probe")
def uploads_probe(self, payload):
    return _delivery(self.request)


@shared_task(bind=True, name="apps.transcode.tasks.routing_probe")
def transcode_probe(self, payload):
    return _delivery(self.request)


@shared_task(bind=True, name="apps.chain.tasks.routing_probe")
def chain_probe(self, payload):
    return _delivery(self.request)


@shared_task(bind=True, name="apps.content.tasks.routing_probe")
def default_probe(self, payload):
    return _delivery(self.request)


@shared_task(bind=True, name="apps.content.tasks.request_id_probe")
def request_id_probe(self):
    """Logs a line and returns the request id the task runs under."""
    import logging

    from streamgate.observability import current_request_id

    logging.getLogger("tests.probe").info("probe ran", extra={"probe": "yes"})
    return current_request_id()


@shared_task(name="apps.content.tasks.failing_probe")
def failing_probe():
    raise RuntimeError("this task fails on purpose")


@shared_task(name="apps.content.tasks.log_probe")
def log_probe(marker: str) -> None:
    """Logs ``marker`` once through one of our loggers and once through one of Django's (as
    Django logs requests, security events and queries)."""
    import logging

    logging.getLogger("apps.content.tasks").info("app logged %s", marker)
    logging.getLogger("django.request").warning("django logged %s", marker)
