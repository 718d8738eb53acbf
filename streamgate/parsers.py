"""JSON request bodies for the API, with bounded nesting.

Python's json module parses recursively: a body nested a few thousand levels deep raises
RecursionError, and one nested ~950 deep parses but then overflows the stack in whatever walks
it next (DRF's JSONField serialises it again). No input of ours nests more than a gate rule
(8 levels, about 18 in JSON), so a body deeper than MAX_JSON_DEPTH is refused before parsing.
"""

import re
from itertools import accumulate

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

MAX_JSON_DEPTH = 64

# A JSON string, escapes included; the brackets inside strings do not nest anything.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text``, counted without parsing (linear time,
    no recursion). Malformed text gets some number; the parser then refuses it."""
    skeleton = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, skeleton)), default=0)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser (strict: no NaN or Infinity), refusing bodies nested deeper than
    MAX_JSON_DEPTH with 400 ``reason: json_too_deep``."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})  # text encodings only
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as error:
            raise ParseError(f"JSON parse error - {error}") from None
        if json_depth(text) > MAX_JSON_DEPTH:
            raise ParseError(
                f"JSON nested deeper than {MAX_JSON_DEPTH} levels.", code="json_too_deep"
            )
        try:
            return json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from None
