"""kombu's Redis transport, with one fix: a channel can still reach Redis after its connection
was torn down, so a broker outage never stops the worker.

What happens without it (kombu 5.7, celery 5.7; seen on every Redis crash during an encode):
when the worker loses Redis, the consumer calls ``connection.collect()`` and then
``connection.close()`` (celery.worker.consumer.Consumer.on_connection_error_after_connected).
``collect()`` closes the connection's channels and detaches the transport from its Connection
(``transport.client = None``). With Redis gone, closing the remote-control or gossip channel
fails first (deleting its fanout binding) and cuts the loop short, so the channel that consumes
tasks stays open. ``close()`` then closes it: kombu requeues its unacknowledged messages (the
running acks-late encode's), and building the Redis pool for that reads
``transport.client.hostname``. That AttributeError is no connection error, nothing handles it,
and the worker logs "Unrecoverable error" and exits once the encode ends; the late
acknowledgement of that encode fails the same way.

The transport here keeps the Connection it last served, so such a late requeue or acknowledgement
opens a fresh Redis connection: it succeeds once Redis is back, and while Redis is away it fails
with the ordinary ConnectionError that kombu and Celery handle.
"""

from kombu import Connection
from kombu.transport import redis


class Transport(redis.Transport):
    """Named by ``CELERY_BROKER_TRANSPORT`` when the broker is Redis."""

    @property
    def client(self) -> Connection | None:
        return self._client

    @client.setter
    def client(self, value: Connection | None) -> None:
        # kombu sets None to drop a reference cycle; the channels may still need the settings.
        if value is not None or not hasattr(self, "_client"):
            self._client = value
