"""Findings: problems in the data, as values the algorithms return and the CLI reports."""

from __future__ import annotations

from dataclasses import dataclass, field

ERROR = "error"  # a live image is broken, or regstore cannot know what is live
WARNING = "warning"  # something is wrong but nothing live depends on it
HINT = "hint"  # leftovers that gc would reclaim, or odd but harmless entries

SEVERITIES = (ERROR, WARNING, HINT)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in a store.

    ``kind`` is a stable identifier (documented in the README, used in JSON and metrics);
    ``message`` is one human sentence; ``images`` names the images an error breaks, as
    ``repo:tag`` or ``repo@digest`` for untagged manifests.
    """

    kind: str
    severity: str
    message: str
    digest: str | None = None
    repository: str | None = None
    key: str | None = None
    images: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "digest": self.digest,
            "repository": self.repository,
            "path": self.key,
            "images": list(self.images),
        }


def printable(name: str) -> str:
    """A name as it can be shown safely: non-UTF-8 bytes and control characters escaped."""
    safe = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in safe)
