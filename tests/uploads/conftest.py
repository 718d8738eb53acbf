import base64
import hashlib

import pytest

from apps.uploads.models import Upload

COLLECTION = "/api/v1/uploads/"
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_TYPE = "application/offset+octet-stream"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def metadata(**values: str) -> str:
    return ",".join(f"{key} {b64(value)}" for key, value in values.items())


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


class Tus:
    """A tus client over DRF's test client: every request carries Tus-Resumable unless told."""

    def __init__(self, client) -> None:
        self.client = client

    def _headers(self, headers: dict | None, tus: bool) -> dict:
        return {**(TUS if tus else {}), **(headers or {})}

    def options(self, path: str = COLLECTION, headers=None):
        return self.client.generic("OPTIONS", path, headers=headers or {})

    def create(
        self,
        length: int,
        meta: str | None = None,
        body: bytes | None = None,
        headers=None,
        tus: bool = True,
    ):
        extra = {"Upload-Length": str(length)}
        if meta is not None:
            extra["Upload-Metadata"] = meta
        if body is not None:
            return self.client.generic(
                "POST",
                COLLECTION,
                body,
                content_type=OFFSET_TYPE,
                headers=self._headers({**extra, **(headers or {})}, tus),
            )
        return self.client.generic(
            "POST", COLLECTION, headers=self._headers({**extra, **(headers or {})}, tus)
        )

    def head(self, location: str, headers=None, tus: bool = True):
        return self.client.generic("HEAD", location, headers=self._headers(headers, tus))

    def patch(
        self,
        location: str,
        offset: int,
        data: bytes,
        headers=None,
        tus: bool = True,
        content_type: str = OFFSET_TYPE,
    ):
        merged = {"Upload-Offset": str(offset), **(headers or {})}
        return self.client.generic(
            "PATCH", location, data, content_type=content_type, headers=self._headers(merged, tus)
        )

    def delete(self, location: str, headers=None, tus: bool = True):
        return self.client.generic("DELETE", location, headers=self._headers(headers, tus))

    def upload(self, data: bytes, chunk: int, **meta: str) -> str:
        """Create and send ``data`` in ``chunk``-sized PATCHes; returns the Location."""
        created = self.create(len(data), metadata(**meta) if meta else None)
        assert created.status_code == 201, created.content
        location = created["Location"]
        for start in range(0, len(data), chunk):
            response = self.patch(location, start, data[start : start + chunk])
            assert response.status_code == 204, response.content
            assert int(response["Upload-Offset"]) == min(start + chunk, len(data))
        return location


def upload_of(location: str) -> Upload:
    return Upload.objects.get(pk=location.rstrip("/").rsplit("/", 1)[-1])


@pytest.fixture
def tus_for(client_for):
    def make(user) -> Tus:
        return Tus(client_for(user))

    return make
