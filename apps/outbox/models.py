"""A task to send, written in the transaction whose commit asks for it (a transactional outbox).

The row commits with the work it announces; sending it to the broker deletes it. A row that
stays was not sent (the broker was away, or the process died between commit and send), and the
relay sends it later. The table holds only what is in flight, so it stays small.
"""

from django.db import models
from django.utils import timezone


class OutboxMessage(models.Model):
    task = models.CharField(max_length=200, help_text="The Celery task's registered name.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    options = models.JSONField(
        default=dict, blank=True, help_text="apply_async options: time limits, countdown."
    )
    created_at = models.DateTimeField(default=timezone.now)
    # When the relay may send it: after a grace that leaves the sender's own attempt alone,
    # then pushed ahead by each relay attempt (a lease, so two relays never send one together).
    send_after = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0, help_text="Sends tried by the relay.")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["send_after"], name="outbox_send_after")]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)!r}"
