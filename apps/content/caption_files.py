"""Caption files as creators upload them: a language tag checked, a WebVTT or SRT file checked
and turned into the WebVTT players get. Pure: no Django, no storage.

Parsing is webvtt-py's (SRT to WebVTT included); tags are checked by langcodes (RFC 5646
well-formedness and registry, names for default labels). What they let through and we refuse:
webvtt-py takes ``WEBVTTX`` for a header and ``00:00:61,000`` for a time, and ignores a cue
that ends before it starts; langcodes takes ``en_US``. Every timing line is therefore checked
here against the WebVTT (or SRT) timestamp grammar, and the tag against RFC 5646's characters.
"""

import io
import re
from dataclasses import dataclass

import langcodes
import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

MAX_CAPTION_BYTES = 1024 * 1024
MAX_TAG_LENGTH = 35  # RFC 5646 4.4.1: the length every implementation must handle
MAX_LABEL_LENGTH = 100
BOM = b"\xef\xbb\xbf"
_TAG_SHAPE = re.compile(r"[A-Za-z0-9]{1,8}(?:-[A-Za-z0-9]{1,8})*")
# A WebVTT timestamp (hours optional, at least two digits), and SRT's (comma or dot).
_VTT_TIME = re.compile(r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})")
_SRT_TIME = re.compile(r"(\d{1,}):([0-5]\d):([0-5]\d)[,.](\d{3})")
# WebVTT wants blanks around the arrow; SRT files in the wild often have none.
_TIMING = {
    "vtt": re.compile(r"\s*(\S+)[ \t]+-->[ \t]+(\S+)(?:[ \t].*)?"),
    "srt": re.compile(r"\s*([\d:,.]+)[ \t]*-->[ \t]*([\d:,.]+)(?:[ \t].*)?"),
}
_HEADER = re.compile(r"WEBVTT(?:[ \t].*)?")


class CaptionInvalid(ValueError):
    """Why an upload cannot be a caption; ``reason`` is the API's machine-readable code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class CaptionFile:
    vtt: str  # the WebVTT text to store
    source_format: str  # "vtt" or "srt"
    cues: int


def language_check(tag: str) -> tuple[str, str]:
    """(the tag in its conventional case, the language's English name) for a well-formed,
    valid BCP 47 tag; CaptionInvalid otherwise."""
    tag = tag.strip()
    if not tag:
        raise CaptionInvalid(
            "Give the captions' language as a BCP 47 tag, e.g. en or pt-BR.",
            reason="language_missing",
        )
    if (
        len(tag) > MAX_TAG_LENGTH
        or not _TAG_SHAPE.fullmatch(tag)
        or not langcodes.tag_is_valid(tag)
    ):
        raise CaptionInvalid(
            f"{tag[:40]!r} is not a well-formed BCP 47 language tag (RFC 5646), e.g. en, "
            "pt-BR, zh-Hant.",
            reason="language_invalid",
        )
    language = langcodes.Language.get(tag, normalize=False)
    name = language.display_name()
    return language.to_tag(), (tag if name.startswith("Unknown language") else name)


def caption_parse(data: bytes) -> CaptionFile:
    """The WebVTT to store for an uploaded WebVTT or SRT file (UTF-8, a BOM allowed, at most
    MAX_CAPTION_BYTES: a caller may pass only the first MAX_CAPTION_BYTES + 1 bytes of a
    larger file); CaptionInvalid with the first problem found."""
    if len(data) > MAX_CAPTION_BYTES:
        raise CaptionInvalid(
            f"The file is larger than 1 MiB ({MAX_CAPTION_BYTES} bytes), the most a caption "
            "file may have.",
            reason="file_too_large",
        )
    try:
        text = data.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError as error:
        raise CaptionInvalid(
            f"The file is not UTF-8 text (byte {error.start}); save it as UTF-8.",
            reason="not_utf8",
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\0" in text:
        raise CaptionInvalid(
            "The file holds NUL characters; it is not a text file.", reason="not_text"
        )
    if not text.strip():
        raise CaptionInvalid("The file is empty.", reason="file_empty")
    first_line = text.split("\n", 1)[0]
    if first_line.startswith("WEBVTT"):
        if not _HEADER.fullmatch(first_line):
            raise CaptionInvalid(
                "A WebVTT file starts with a line 'WEBVTT' (optionally followed by a space "
                "and text).",
                reason="caption_unparseable",
            )
        return _parsed(text, "vtt")
    return _parsed(text, "srt")


def _parsed(text: str, kind: str) -> CaptionFile:
    times = _timings(text, _VTT_TIME if kind == "vtt" else _SRT_TIME, kind)
    try:
        if kind == "vtt":
            parsed = webvtt.WebVTT.from_string(text, strict=True)
        else:
            parsed = webvtt.WebVTT.from_buffer(io.StringIO(text), format="srt")
    except (MalformedFileError, MalformedCaptionError) as error:
        what = "WebVTT" if kind == "vtt" else "WebVTT nor SRT"
        raise CaptionInvalid(
            f"The file is not valid {what}: {error}", reason="caption_unparseable"
        ) from None
    if not parsed.captions or not times:
        raise CaptionInvalid("The file holds no cues.", reason="caption_empty")
    if len(parsed.captions) != len(times):
        raise CaptionInvalid(
            f"{len(times)} cue timings but {len(parsed.captions)} cues could be read; check the "
            "blank lines between cues.",
            reason="caption_unparseable",
        )
    vtt = _without_timestamp_map(text) if kind == "vtt" else parsed.content
    return CaptionFile(
        vtt=vtt if vtt.endswith("\n") else vtt + "\n", source_format=kind, cues=len(times)
    )


def _seconds(match: re.Match) -> float:
    hours, minutes, seconds, millis = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _timings(text: str, grammar: re.Pattern, kind: str) -> list[tuple[float, float]]:
    """(start, end) of every timing line, each checked: well-formed, and ending after it starts.
    Neither format allows "-->" elsewhere (WebVTT forbids it in cue text and comments)."""
    found = []
    example = "00:01:02.500" if kind == "vtt" else "00:01:02,500"
    for number, line in enumerate(text.split("\n"), start=1):
        if "-->" not in line:
            continue
        timing = _TIMING[kind].fullmatch(line)
        start = grammar.fullmatch(timing.group(1)) if timing else None
        end = grammar.fullmatch(timing.group(2)) if timing else None
        if start is None or end is None:
            raise CaptionInvalid(
                f"Line {number}: {line.strip()[:80]!r} is not a cue timing "
                f"(start --> end, times as {example}).",
                reason="cue_timing_invalid",
            )
        begins, ends = _seconds(start), _seconds(end)
        if ends <= begins:
            raise CaptionInvalid(
                f"Line {number}: the cue ends ({timing.group(2)}) before it starts "
                f"({timing.group(1)}).",
                reason="cue_timing_invalid",
            )
        found.append((begins, ends))
    return found


def _without_timestamp_map(text: str) -> str:
    """The file without an X-TIMESTAMP-MAP header line: the server writes the one that matches
    the encoded media when it serves the file to HLS players."""
    header, separator, rest = text.partition("\n\n")
    lines = [line for line in header.split("\n") if not line.startswith("X-TIMESTAMP-MAP")]
    return "\n".join(lines) + separator + rest


def label_check(label: str) -> str:
    """The label on one line (runs of white space made one space); CaptionInvalid when too
    long or holding other control characters."""
    label = " ".join(label.split())
    if len(label) > MAX_LABEL_LENGTH:
        raise CaptionInvalid(
            f"The label has {len(label)} characters; at most {MAX_LABEL_LENGTH}.",
            reason="label_invalid",
        )
    if any(ord(character) < 32 or ord(character) == 127 for character in label):
        raise CaptionInvalid("The label holds control characters.", reason="label_invalid")
    return label
