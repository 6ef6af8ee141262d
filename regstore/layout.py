"""The registry's storage layout: names, digests and the keys they live under.

Every key regstore touches is built here, from a validated digest, repository name or tag, and is
relative to ``<rootdirectory>/docker/registry/v2`` with ``/`` separators. Nothing outside this
module joins user data into a path, so a link holding ``sha256:../../etc`` or a repository
called ``..`` can never become a key (dulwich checks an object id before joining it into a path
for the same reason).
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache

V2_PREFIX = "docker/registry/v2"
BLOBS = "blobs"
REPOSITORIES = "repositories"

# Hex lengths of the algorithms the registry's digest package accepts.
DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_RE = re.compile(r"(sha256|sha384|sha512):([0-9a-f]+)")
_SHA256_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_HEX_RE = re.compile(r"[0-9a-f]+")

# The registry's grammar for a repository path component (reference/regexp.go).
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*")
MAX_REPOSITORY_LENGTH = 255
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9._=-]{1,200}")


class InvalidName(ValueError):
    """A digest, repository name, tag or upload id that does not follow the registry's grammar."""


def is_digest(text: str) -> bool:
    """Whether ``text`` is a canonical digest (``alg:hex``, lowercase, of the right length)."""
    if _SHA256_DIGEST_RE.fullmatch(text):
        return True  # nearly every digest: one match, no groups
    m = _DIGEST_RE.fullmatch(text)
    return bool(m) and len(m.group(2)) == DIGEST_HEX_LENGTH[m.group(1)]


def check_digest(text: str) -> str:
    """Return ``text`` if it is a canonical digest, else raise :class:`InvalidName`."""
    if not is_digest(text):
        raise InvalidName(f"not a digest: {text[:80]!r}")
    return text


def digest_from_parts(algorithm: str, hex_part: str) -> str | None:
    """The digest named by a directory pair ``<alg>/<hex>``, or None if the pair is not one."""
    if DIGEST_HEX_LENGTH.get(algorithm) != len(hex_part) or not _HEX_RE.fullmatch(hex_part):
        return None
    # One string per digest, however many links and listings name it: a store holds each
    # digest several times over (blob, layer links, marks), 120 bytes a copy.
    return sys.intern(f"{algorithm}:{hex_part}")


# One pattern a whole directory listing at a time: "/" cannot occur in a name, so each
# "<name>/" of the joined listing must itself be a hex string of the algorithm's length.
_HEX_NAMES_RE = {alg: re.compile(rf"(?:[0-9a-f]{{{n}}}/)*") for alg, n in DIGEST_HEX_LENGTH.items()}


def digests_from_names(algorithm: str, names: list[str]) -> list[str | None]:
    """:func:`digest_from_parts` of each name of a ``<alg>`` directory's listing, in order.

    A listing where every name is a digest (nearly all of them) is checked by one regular
    expression instead of one per name: hundreds of thousands of names per run."""
    if all_hashes(algorithm, names):
        return [sys.intern(f"{algorithm}:{name}") for name in names]
    return [digest_from_parts(algorithm, name) for name in names]


def all_hashes(algorithm: str, names: list[str]) -> bool:
    """Whether every name of ``names`` is a hash of ``algorithm`` (so names a digest), checked
    by one regular expression for the whole listing."""
    pattern = _HEX_NAMES_RE.get(algorithm)
    joined = "/".join(names) + "/" if names else ""
    # The length rules out a name that itself holds "/" (no listing gives one; still).
    return pattern is not None and pattern.fullmatch(joined) is not None and \
        len(joined) == len(names) * (DIGEST_HEX_LENGTH[algorithm] + 1)


def split_digest(digest: str) -> tuple[str, str]:
    """Split a validated digest into algorithm and hex."""
    algorithm, hex_part = check_digest(digest).split(":", 1)
    return algorithm, hex_part


def is_repository_component(name: str) -> bool:
    """Whether ``name`` is one valid component of a repository name."""
    return bool(_COMPONENT_RE.fullmatch(name))


@lru_cache(maxsize=1 << 16)  # every key of a repository checks its name again
def check_repository(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise :class:`InvalidName`."""
    if len(name) > MAX_REPOSITORY_LENGTH or not all(
        is_repository_component(c) for c in name.split("/")
    ):
        raise InvalidName(f"not a repository name: {name[:80]!r}")
    return name


def is_tag(name: str) -> bool:
    """Whether ``name`` is a valid tag."""
    return bool(_TAG_RE.fullmatch(name))


def check_tag(name: str) -> str:
    """Return ``name`` if it is a valid tag, else raise :class:`InvalidName`."""
    if not is_tag(name):
        raise InvalidName(f"not a tag: {name[:80]!r}")
    return name


def is_upload_id(name: str) -> bool:
    """Whether ``name`` can be an upload directory's name (no separators, no dot-only names)."""
    return bool(_UPLOAD_ID_RE.fullmatch(name)) and name.strip(".") != ""


# --- keys -----------------------------------------------------------------------------------


def blob_dir(digest: str) -> str:
    """``blobs/<alg>/<xx>/<hex>``: the directory the registry removes to delete a blob."""
    algorithm, hex_part = split_digest(digest)
    return f"{BLOBS}/{algorithm}/{hex_part[:2]}/{hex_part}"


def blob_data(digest: str) -> str:
    """``blobs/<alg>/<xx>/<hex>/data``: the blob's content."""
    return blob_dir(digest) + "/data"


def repository_dir(repo: str) -> str:
    return f"{REPOSITORIES}/{check_repository(repo)}"


def layers_dir(repo: str) -> str:
    return repository_dir(repo) + "/_layers"


def layer_link_dir(repo: str, digest: str) -> str:
    algorithm, hex_part = split_digest(digest)
    return f"{layers_dir(repo)}/{algorithm}/{hex_part}"


def layer_link(repo: str, digest: str) -> str:
    return layer_link_dir(repo, digest) + "/link"


def revisions_dir(repo: str) -> str:
    return repository_dir(repo) + "/_manifests/revisions"


def revision_dir(repo: str, digest: str) -> str:
    algorithm, hex_part = split_digest(digest)
    return f"{revisions_dir(repo)}/{algorithm}/{hex_part}"


def revision_link(repo: str, digest: str) -> str:
    return revision_dir(repo, digest) + "/link"


def tags_dir(repo: str) -> str:
    return repository_dir(repo) + "/_manifests/tags"


def tag_dir(repo: str, tag: str) -> str:
    return f"{tags_dir(repo)}/{check_tag(tag)}"


def tag_current_link(repo: str, tag: str) -> str:
    return tag_dir(repo, tag) + "/current/link"


def tag_index_dir(repo: str, tag: str) -> str:
    return tag_dir(repo, tag) + "/index"


def tag_index_entry_dir(repo: str, tag: str, digest: str) -> str:
    algorithm, hex_part = split_digest(digest)
    return f"{tag_index_dir(repo, tag)}/{algorithm}/{hex_part}"


def uploads_dir(repo: str) -> str:
    return repository_dir(repo) + "/_uploads"


def upload_dir(repo: str, upload_id: str) -> str:
    if not is_upload_id(upload_id):
        raise InvalidName(f"not an upload id: {upload_id[:80]!r}")
    return f"{uploads_dir(repo)}/{upload_id}"


def parse_link(content: bytes) -> str:
    """The digest a link file holds, or :class:`InvalidName` if it holds anything else.

    The registry writes the digest without a newline; surrounding whitespace is tolerated
    because a hand-edited link would otherwise look corrupt for no good reason.
    """
    try:
        text = content.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InvalidName("link file is not ASCII") from None
    if not text:
        raise InvalidName("link file is empty")
    return check_digest(text)
