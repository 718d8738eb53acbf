from streamgate.exceptions import Conflict, DomainError, NotAllowed, NotFound


class NotACreator(NotAllowed):
    """Only creators may create and upload content."""


class BadGate(DomainError):
    """A gate rule that cannot be enforced (400, with the path of the bad node)."""


class SourceMissing(Conflict):
    """The content has no stored original (never uploaded, or its file is gone)."""


class CaptionRefused(DomainError):
    """An uploaded caption file or its language cannot be used (400, the reason says why)."""


class CaptionExists(Conflict):
    """The content already has captions in that language (409: delete them first)."""


class ContentGone(NotFound):
    """The content was deleted while the request was working on it."""


class WebhookInvalid(DomainError):
    """A webhook endpoint that cannot be saved (400: its URL or events; the reason says which)."""


class WebhookDisabled(Conflict):
    """The endpoint is disabled: enable it before sending to it (409)."""
