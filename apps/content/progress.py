"""One forward-only progress for a content, across all its phases, in plain words.

The phases run at very different speeds (the network, then the encoder), and each used to report
its own 0-100, so a bar jumped back to 0 at every stage. Here each phase owns a fixed slice of one
0-100 scale; the services store the highest value reached in the current attempt and the
websocket messages carry it as ``overall``, with a ``label`` a creator understands. Pure code:
no Django, no I/O.
"""

# (start, end) of each phase on the overall scale. Uploading is a third of the bar, encoding most
# of the rest; packaging and publishing are short. Ready alone is 100.
PHASE_SPANS: dict[str, tuple[int, int]] = {
    "upload": (0, 30),
    "queued": (30, 32),
    "probe": (32, 34),
    "encode": (34, 88),
    "package": (88, 92),
    "publish": (92, 99),
    "ready": (100, 100),
}
# Where an attempt starts when it is (re)queued, and where processing starts.
QUEUED_START = PHASE_SPANS["queued"][0]
PROCESSING_START = PHASE_SPANS["probe"][0]

RETRYING = "Retrying: "

_LABELS = {
    "draft": "Waiting for the file",
    "upload": "Uploading",
    "uploading": "Uploading",
    "queued": "Waiting for an encoder",
    "processing": "Processing",
    "probe": "Checking the video",
    "encode": "Encoding",
    "package": "Preparing for streaming",
    "publish": "Preparing for streaming",
    "ready": "Ready",
    "failed": "Failed",
}


def overall_percent(phase: str, percent: float) -> int:
    """Where ``percent`` (0-100) of ``phase`` lies on the overall scale (an int, 0-100)."""
    start, end = PHASE_SPANS[phase]
    share = max(0.0, min(100.0, percent)) / 100
    return int(start + (end - start) * share)


def phase_label(phase: str, *, rung: str | None = None, retrying: bool = False) -> str:
    """The phase (a stage or a status) in plain words: "Encoding 720p", "Ready". ``rung`` names
    the tallest rendition being encoded (all rungs are encoded in one pass); ``retrying`` marks
    a later attempt."""
    label = _LABELS.get(phase, phase.capitalize())
    if phase == "encode" and rung:
        label = f"Encoding {rung}"
    if retrying and phase not in ("ready", "failed"):
        return RETRYING + label[0].lower() + label[1:]
    return label
