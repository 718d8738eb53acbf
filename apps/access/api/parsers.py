"""Beacon bodies: JSON, sent as ``application/json`` by fetch or as ``text/plain`` by
``navigator.sendBeacon`` with a string (a type it may send cross-origin without a preflight),
and never larger than BEACON_MAX_BYTES, read no further than that."""

import io

from rest_framework import status
from rest_framework.exceptions import APIException

from apps.access.audience import BEACON_MAX_BYTES
from streamgate.parsers import JSONParser


class BeaconTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"A beacon is at most {BEACON_MAX_BYTES} bytes."
    default_code = "too_large"


class BeaconJSONParser(JSONParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > BEACON_MAX_BYTES:
            raise BeaconTooLarge()
        body = stream.read(BEACON_MAX_BYTES + 1)
        if len(body) > BEACON_MAX_BYTES:
            raise BeaconTooLarge()
        return super().parse(io.BytesIO(body), media_type, parser_context)


class BeaconTextParser(BeaconJSONParser):
    media_type = "text/plain"
