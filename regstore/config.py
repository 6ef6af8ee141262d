"""The registry's own config.yml, resolved exactly as the registry resolves it.

regstore is a drop-in for ``registry garbage-collect [--dry-run] config.yml``, so it reads the
same file and the same ``REGISTRY_*`` environment as CNCF Distribution 2.8 (Debian's
docker-registry 2.8.2) and must arrive at the same storage driver and root directory. The rules
below come from the registry's source: ``configuration/configuration.go`` and
``configuration/parser.go`` (the file and the environment), ``registry/registry.go``
(``resolveConfiguration``: where the file is), ``registry/root.go`` (what garbage-collect reads),
``registry/handlers/app.go`` (how ``registry serve`` reads maintenance, delete and cache) and
``registry/storage/driver/filesystem/driver.go`` (``rootdirectory``).

**The file.** YAML is read the way the registry's YAML library (gopkg.in/yaml.v2) reads it:
YAML 1.1 scalars, so ``y``/``n``/``yes``/``no``/``on``/``off`` are booleans, ``0x10`` and ``1_000``
are integers, timestamps stay strings; merge keys (``<<``) and anchors work; the first document
counts; a duplicate key's last value wins. ``version`` must be ``0.1``, the top level a mapping.
``storage`` maps one driver name (anything but ``maintenance``, ``cache``, ``delete``,
``redirect``) to its parameters; ``storage: filesystem`` (a bare name) means that driver with no
parameters. Exactly one driver, after the environment is applied.

**The environment.** Every variable whose name starts with ``REGISTRY_`` is applied, in byte
order of the names, so ``REGISTRY_STORAGE`` comes before ``REGISTRY_STORAGE_FILESYSTEM_…`` and a
whole section is set before its keys. The name is split on ``_``; the first part picks a field
of the configuration by its name in capitals (``STORAGE``, ``REDIS``); the next ones walk into maps,
matching an existing key in capitals (and recreating it if its value is empty), while the last
part always sets its key in lower case. The value is parsed as YAML.
So, as in the registry:

- ``REGISTRY_STORAGE=s3`` (or a YAML mapping such as ``{filesystem: {rootdirectory: /x}}``)
  replaces the **whole** storage section of the file: its driver, ``maintenance``, ``delete`` and
  ``cache`` are gone, and later ``REGISTRY_STORAGE_S3_BUCKET=…`` variables fill the new one.
  An empty value empties it (then only further ``REGISTRY_STORAGE_…`` variables remain).
- ``REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/x``, ``REGISTRY_STORAGE_S3_BUCKET=b``,
  ``REGISTRY_STORAGE_DELETE_ENABLED=true``, ``REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis``
  set one parameter. Naming a driver the file does not use adds a second driver, which the
  registry refuses ("multiple storage drivers"), and so does regstore.
- ``REGISTRY_STORAGE_FILESYSTEM='{rootdirectory: /x}'`` and
  ``REGISTRY_STORAGE_MAINTENANCE='{readonly: {enabled: true}}'`` replace one driver's or one
  section's parameters.
- ``REGISTRY_STORAGE_MAINTENANCE_READONLY='{"enabled": true}'`` works, and is the form to use:
  the value is a YAML mapping, which is what ``registry serve`` expects.
- ``REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=true`` (and ``…_UPLOADPURGING_ENABLED``) does
  **not** work in 2.8 (distribution#1736): if the file has a ``readonly:`` mapping the registry
  ignores the variable ("involving map with non-string keys") and keeps the file's value; if it
  has none, the variable builds a map that ``registry serve`` rejects at start with the panic
  "readonly config key must contain additional keys". regstore follows it: the first case keeps
  the file's value and adds a warning, the second is a ConfigError that names the working form.
- ``REGISTRY_REDIS_ADDR=host:6379`` and ``REGISTRY_REDIS='{addr: host:6379}'`` set the redis
  address. Lower-case parts (``REGISTRY_STORAGE_filesystem_rootdirectory``) create a lower-case
  map key, replacing that key's whole map; ``REGISTRY_storage_…`` matches no field and is ignored.
- The path of the file: the command-line argument, else a non-empty
  ``REGISTRY_CONFIGURATION_PATH``. The registry itself has no default; regstore falls back to
  ``/etc/docker/registry/config.yml``, where the official image and Debian's service keep it.

**What is read, with the registry's rules.** ``storage.maintenance.readonly`` must be a mapping
and its ``enabled`` a boolean (``registry serve`` panics otherwise). ``uploadpurging``, when
given, replaces all of its defaults (enabled, ``age`` 168h, ``interval`` 24h, ``dryrun`` false):
unless ``enabled`` is false, ``age`` and ``interval`` must be Go duration strings and ``dryrun``
a boolean, all present. ``delete.enabled`` counts only as the boolean true. The cache is
``cache.blobdescriptor``, or the older ``cache.layerinfo``, when it is ``inmemory`` or ``redis``.

**Where regstore deliberately differs.** Each difference turns a registry surprise into a
message before anything is deleted:

- It checks only what it reads (storage, redis address, version); a bad value elsewhere
  (``http``, ``log``, ``REGISTRY_HTTP_…``) that would stop the registry is not reported, and
  ``REGISTRY_*`` variables other than ``REGISTRY_STORAGE…`` and ``REGISTRY_REDIS…`` are ignored.
- A ``rootdirectory`` that is not a string (``5``, ``true``, an empty value) is an error; the
  registry would turn it into a relative directory named ``5``, ``true`` or ``<nil>``. An empty
  string is an error too; the registry would store under ``/``.
- A relative ``rootdirectory`` is resolved against the current directory, as
  ``registry garbage-collect`` does, and a warning says so: the running registry resolves it
  against its own working directory (``/`` for Debian's service and the official image).
- Problems ``registry serve`` reports at start but that do not change what regstore does
  (``delete.enabled: "true"``, an unknown cache type, a redis cache without ``redis.addr``)
  become warnings in ``RegistryConfig.warnings`` instead of errors.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from regstore.store.s3 import S3Settings

__all__ = [
    "ConfigError",
    "UploadPurging",
    "RegistryConfig",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_ROOT",
    "default_config_path",
    "load_config",
    "config_for_root",
    "require_filesystem",
    "storage_backend",
    "s3_settings",
    "parse_go_duration",
]

DEFAULT_CONFIG_PATH = Path("/etc/docker/registry/config.yml")
# The filesystem driver's defaultRootDirectory (registry/storage/driver/filesystem/driver.go).
DEFAULT_ROOT = Path("/var/lib/registry")
CONFIGURATION_PATH_VARIABLE = "REGISTRY_CONFIGURATION_PATH"

_ENV_PREFIX = "REGISTRY_"
# Keys of `storage` that are not drivers (Storage.Type in configuration.go).
_NON_DRIVER_KEYS = frozenset({"maintenance", "cache", "delete", "redirect"})
_NANOS_PER_SECOND = 1_000_000_000
_DEFAULT_PURGE_AGE = 168 * 3600.0
_DEFAULT_PURGE_INTERVAL = 24 * 3600.0
# A YAML file expands aliases; bound the work so an alias bomb is an error, not a hang.
_MAX_NODES = 200_000
_MISSING: Any = object()


class ConfigError(Exception):
    """The registry's configuration cannot be used: says what, where (file, key) and what to do.

    ``path`` is the configuration file concerned (None when there is none), ``key`` the dotted
    key when one is to blame. The message is always a single line.
    """

    exit_code = 3

    def __init__(self, message: str, path: Path | None = None, key: str | None = None) -> None:
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(message)
        self.message = message
        self.path = path
        self.key = key

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class UploadPurging:
    """The running registry's purge of stale uploads (storage.maintenance.uploadpurging)."""

    enabled: bool
    age_seconds: float
    interval_seconds: float
    dryrun: bool


_DEFAULT_PURGING = UploadPurging(True, _DEFAULT_PURGE_AGE, _DEFAULT_PURGE_INTERVAL, False)


@dataclass(frozen=True)
class RegistryConfig:
    """What regstore needs from the registry's configuration, after environment overrides.

    ``warnings`` holds one-line notes about settings the registry would ignore or read
    differently from what the operator probably meant; the CLI prints them.
    """

    path: Path | None
    driver: str
    driver_params: Mapping[str, Any]
    root: Path | None
    readonly: bool
    delete_enabled: bool
    blobdescriptor_cache: str | None
    redis_addr: str | None
    upload_purging: UploadPurging
    warnings: tuple[str, ...] = ()


def default_config_path(environ: Mapping[str, str]) -> Path:
    """Return the config file to read when none is named: a non-empty REGISTRY_CONFIGURATION_PATH
    (the registry ignores an empty one, registry/registry.go resolveConfiguration), otherwise
    /etc/docker/registry/config.yml, where the official image and Debian's service keep it."""
    value = environ.get(CONFIGURATION_PATH_VARIABLE, "")
    return Path(value) if value else DEFAULT_CONFIG_PATH


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> RegistryConfig:
    """Read the registry's config file at ``path`` (``default_config_path(environ)`` when None),
    apply the ``REGISTRY_*`` overrides from ``environ`` as the registry does, and return what
    regstore needs. A relative filesystem ``rootdirectory`` is resolved against the current
    directory, as ``registry garbage-collect`` does, with a warning, because the running
    registry resolves it against its own working directory. Every problem is a ConfigError
    (exit code 3) naming the file, the key or variable, and the fix."""
    if path is None:
        path = default_config_path(environ)
    text = _read_text(path)
    resolution = _Resolution(path)
    resolution.read_file(text)
    resolution.apply_environment(environ)
    return resolution.result()


def config_for_root(root: Path) -> RegistryConfig:
    """Return the configuration regstore assumes for ``--root DIR`` without a config file: the
    filesystem driver at ``root`` (made absolute against the current directory), not read-only,
    and the registry's defaults for everything else. No environment variable is read."""
    absolute = Path(os.path.abspath(root))
    return RegistryConfig(
        path=None,
        driver="filesystem",
        driver_params=MappingProxyType({"rootdirectory": str(absolute)}),
        root=absolute,
        readonly=False,
        delete_enabled=False,
        blobdescriptor_cache=None,
        redis_addr=None,
        upload_purging=_DEFAULT_PURGING,
    )


def require_filesystem(cfg: RegistryConfig) -> Path:
    """Return the storage root of ``cfg``, or raise a ConfigError naming the driver when it is
    not the filesystem driver (for what only a filesystem store has)."""
    where = f"{cfg.path}: " if cfg.path is not None else ""
    if cfg.driver == "filesystem" and cfg.root is not None:
        return cfg.root
    if cfg.driver == "s3":
        raise ConfigError(f"{where}this needs a filesystem store, and the config uses the s3 "
                          "driver", cfg.path, "storage")
    raise _unsupported(cfg)


def _unsupported(cfg: RegistryConfig) -> ConfigError:
    where = f"{cfg.path}: " if cfg.path is not None else ""
    if cfg.driver.lower() in ("filesystem", "s3"):
        message = (f"{where}the storage driver is named {cfg.driver!r}; the registry knows "
                   f"drivers by lower-case names only, so it would not start; write "
                   f"`{cfg.driver.lower()}`")
    elif cfg.driver == "inmemory":
        message = (f"{where}the inmemory driver keeps everything in the registry process's "
                   "memory, so there is no store on disk to collect; nothing to do")
    else:
        message = (f"{where}the {cfg.driver} driver is not supported yet; regstore works on the "
                   "filesystem and s3 drivers: run `registry garbage-collect` for this store, or "
                   "point regstore at a filesystem store with --root DIR")
    return ConfigError(message, cfg.path, "storage")


def storage_backend(cfg: RegistryConfig) -> Path | S3Settings:
    """Where the store is: the root directory of a filesystem store, or how to reach the
    bucket of an s3 store. Any other driver is a ConfigError that names it."""
    if cfg.driver == "filesystem" and cfg.root is not None:
        return cfg.root
    if cfg.driver == "s3":
        return s3_settings(cfg)
    raise _unsupported(cfg)


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def s3_settings(cfg: RegistryConfig) -> S3Settings:
    """The ``storage.s3`` parameters as the registry's s3-aws driver (2.8) reads them:
    ``bucket`` and ``region`` required; ``regionendpoint`` (then path-style addressing, as
    2.8 forces it, unless ``forcepathstyle`` says otherwise), ``rootdirectory``, ``secure``
    (default true), ``skipverify`` (default false), ``v4auth`` (default true), ``accesskey`` and
    ``secretkey`` (when absent, the usual AWS credential chain). Values are taken with Go's
    ``fmt.Sprint``; booleans may be YAML booleans or the strings Go's ``strconv.ParseBool``
    accepts. Raises ConfigError naming the key."""
    params = cfg.driver_params
    where = f"{cfg.path}: " if cfg.path is not None else ""

    def text(name: str) -> str:
        value = params.get(name)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def flag(name: str, default: bool) -> bool:
        value = params.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in _GO_TRUE | _GO_FALSE:
            return value in _GO_TRUE
        raise ConfigError(f"{where}storage.s3.{name} is {_describe(value)}, not a boolean; the "
                          f"registry refuses to start ('The {name} parameter should be a "
                          "boolean'); write true or false", cfg.path, f"storage.s3.{name}")

    bucket = text("bucket")
    if not bucket:
        raise ConfigError(f"{where}storage.s3.bucket is missing; the registry refuses to start "
                          "('No bucket parameter provided'); name the bucket of the store",
                          cfg.path, "storage.s3.bucket")
    region = text("region")
    if not region:
        raise ConfigError(f"{where}storage.s3.region is missing; the registry refuses to start "
                          "('No region parameter provided'); give the region (e.g. us-east-1)",
                          cfg.path, "storage.s3.region")
    secure = flag("secure", True)
    endpoint = text("regionendpoint") or None
    if endpoint and "://" not in endpoint:
        # aws-sdk-go adds the scheme the secure flag asks for.
        endpoint = ("https://" if secure else "http://") + endpoint
    forced = params.get("forcepathstyle")
    path_style = flag("forcepathstyle", False) if forced is not None else endpoint is not None
    return S3Settings(
        bucket=bucket, region=region, rootdirectory=text("rootdirectory"), endpoint=endpoint,
        accesskey=text("accesskey"), secretkey=text("secretkey"), secure=secure,
        skipverify=flag("skipverify", False), v4auth=flag("v4auth", True),
        path_style=path_style)


# --- Go durations -----------------------------------------------------------------------------

_DURATION_UNITS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": _NANOS_PER_SECOND,
    "m": 60 * _NANOS_PER_SECOND,
    "h": 3600 * _NANOS_PER_SECOND,
}
_DIGITS = frozenset("0123456789")


def parse_go_duration(text: str) -> float:
    """Parse a Go duration string ("168h", "1h30m", "1.5h", "300ms", "-2s", "0") as Go's
    time.ParseDuration does and return seconds. A unit is required after every number (only "0"
    stands alone), units are ns, us (µs), ms, s, m and h, and the total must fit Go's int64
    nanoseconds. Raises ValueError with Go's own wording otherwise. (A bare integer means
    nanoseconds only where the registry decodes a YAML number into a duration field; the upload
    purging age and interval must be strings and go through this rule.)"""
    quoted = '"' + text + '"'
    rest = text
    negative = False
    if rest and rest[0] in "+-":
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0
    limit = 1 << 63
    while rest:
        if not (rest[0] == "." or rest[0] in _DIGITS):
            raise ValueError(f"time: invalid duration {quoted}")
        i = 0
        while i < len(rest) and rest[i] in _DIGITS:
            i += 1
        whole_digits, rest = rest[:i], rest[i:]
        if len(whole_digits.lstrip("0")) > 19:  # more than 2**63, and cheap to reject
            raise ValueError(f"time: invalid duration {quoted}")
        whole = int(whole_digits) if whole_digits else 0
        if whole > limit:
            raise ValueError(f"time: invalid duration {quoted}")
        fraction, scale, fraction_digits = 0, 1.0, False
        if rest.startswith("."):
            rest = rest[1:]
            i = 0
            overflow = False
            while i < len(rest) and rest[i] in _DIGITS:
                # Go keeps the digits that fit in 63 bits and drops the rest (leadingFraction).
                if not overflow:
                    candidate = fraction * 10 + int(rest[i])
                    if fraction > (limit - 1) // 10 or candidate > limit:
                        overflow = True
                    else:
                        fraction = candidate
                        scale *= 10
                i += 1
            fraction_digits = i > 0
            rest = rest[i:]
        if not whole_digits and not fraction_digits:
            raise ValueError(f"time: invalid duration {quoted}")
        i = 0
        while i < len(rest) and rest[i] != "." and rest[i] not in _DIGITS:
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {quoted}")
        unit_name, rest = rest[:i], rest[i:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f'time: unknown unit "{unit_name}" in duration {quoted}')
        if whole > limit // unit:
            raise ValueError(f"time: invalid duration {quoted}")
        value = whole * unit
        if fraction:
            # Go computes the fraction in float64 and truncates; do the same for equal results.
            value += int(float(fraction) * (float(unit) / scale))
            if value > limit:
                raise ValueError(f"time: invalid duration {quoted}")
        total += value
        if total > limit:
            raise ValueError(f"time: invalid duration {quoted}")
    if negative:
        return -total / _NANOS_PER_SECOND
    if total > limit - 1:
        raise ValueError(f"time: invalid duration {quoted}")
    return total / _NANOS_PER_SECOND



_AGE_RE = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(.*)")


def parse_age(text: str) -> float:
    """An age given on the command line, in seconds: a Go duration ("30m", "1h30m"), with days
    and weeks in front where wanted ("7d", "2w", "1d12h"), or "0". Raises ValueError for
    anything else, negative ages included."""
    m = _AGE_RE.fullmatch(text.strip())
    if not text.strip() or m is None:
        raise ValueError(f"invalid age {text!r}: use e.g. 30m, 2h, 7d")
    weeks, days, rest = m.groups()
    seconds = (int(weeks or 0) * 7 + int(days or 0)) * 86400.0
    if rest:
        try:
            seconds += parse_go_duration(rest)
        except ValueError:
            raise ValueError(f"invalid age {text!r}: use e.g. 30m, 2h, 7d") from None
    elif weeks is None and days is None:
        raise ValueError(f"invalid age {text!r}: use e.g. 30m, 2h, 7d")
    if seconds < 0:
        raise ValueError(f"invalid age {text!r}: an age cannot be negative")
    return seconds

# --- YAML as gopkg.in/yaml.v2 reads it --------------------------------------------------------

class _StrMap(dict[str, Any]):
    """A Go map[string]…: the storage section, a driver's or section's parameters, and maps the
    environment creates. Environment variables can set keys inside it."""


class _AnyMap(dict[Any, Any]):
    """A Go map[interface{}]interface{}: a YAML mapping decoded into an untyped value (anything
    below a section's parameters). The registry cannot set keys inside it from the environment,
    and registry serve insists that readonly and uploadpurging are of this kind."""


_PLAIN = "!regstore-plain"
_TAG = "tag:yaml.org,2002:"
_STR, _BOOL, _INT, _FLOAT = _TAG + "str", _TAG + "bool", _TAG + "int", _TAG + "float"
_NULL, _BINARY = _TAG + "null", _TAG + "binary"
_TIMESTAMP, _MERGE = _TAG + "timestamp", _TAG + "merge"

# yaml.v2's resolve table (resolve.go): YAML 1.1 words, including y and n.
_WORDS: dict[str, Any] = {}
for _words, _value in (
    (("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    (("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    (("", "~", "null", "Null", "NULL"), None),
    ((".nan", ".NaN", ".NAN"), math.nan),
    ((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    (("-.inf", "-.Inf", "-.INF"), -math.inf),
):
    for _word in _words:
        _WORDS[_word] = _value
del _words, _value, _word

# Go's strconv.ParseInt(s, 0, 64) syntax, and yaml.v2's float pattern (v2.4, Debian's).
_GO_INT = re.compile(
    r"([+-]?)(?:0[xX]([0-9a-fA-F]+)|0[bB]([01]+)|0[oO]([0-7]+)|(0[0-7]*)|([1-9][0-9]*))")
_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?")


class _Loader(yaml.SafeLoader):
    """Composes YAML nodes and marks plain scalars, so that they can be resolved by yaml.v2's
    rules instead of PyYAML's (which differ on y/n, 0o17, 1:30, timestamps and more)."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)


class _NodeError(Exception):
    """A YAML value of the wrong shape; the caller adds the file or variable."""

    def __init__(self, message: str, node: Node | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = node.start_mark.line + 1 if node is not None and node.start_mark else None


def _go_int(text: str) -> int | None:
    match = _GO_INT.fullmatch(text)
    if match is None:
        return None
    sign, hexa, binary, octal, zero_octal, decimal = match.groups()
    if hexa is not None:
        value = int(hexa, 16)
    elif binary is not None:
        value = int(binary, 2)
    elif octal is not None:
        value = int(octal, 8)
    elif zero_octal is not None:
        value = int(zero_octal, 8)
    else:
        value = int(decimal)
    if sign == "-":
        value = -value
    if -(1 << 63) <= value < (1 << 63):
        return value
    if not sign and value < (1 << 64):  # ParseUint takes no sign
        return value
    return None


def _resolve_plain(text: str) -> Any:
    """Resolve an untagged plain scalar as yaml.v2 does when decoding into interface{}."""
    if text in _WORDS:
        return _WORDS[text]
    first = text[0]
    if first == ".":
        return float(text) if _DOT_FLOAT.fullmatch(text) else text
    if first in "+-0123456789":
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return number
        if _YAML_FLOAT.fullmatch(plain):
            value = float(plain)
            # Go's ParseFloat fails on overflow; yaml.v2 then keeps the text.
            return text if math.isinf(value) else value
        # Timestamps (2024-01-02) also stay strings in an untyped value (decode.go).
    return text


_RESOLVED_TAGS = {type(None): _NULL, bool: _BOOL, int: _INT, float: _FLOAT, str: _STR}


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


def _scalar(node: ScalarNode) -> Any:
    """The value of a scalar node as yaml.v2 gives it to an untyped (interface{}) target."""
    tag, text = node.tag, node.value
    if tag == _PLAIN:
        return _resolve_plain(text)
    if tag == _STR:
        return text
    if tag == _BINARY:
        try:
            return base64.b64decode(text.encode("ascii"), validate=False).decode("latin-1")
        except (binascii.Error, UnicodeEncodeError):
            raise _NodeError("!!binary value contains invalid base64 data", node) from None
    if tag in (_BOOL, _INT, _FLOAT, _NULL, _TIMESTAMP):
        value = _resolve_plain(text)
        if tag == _TIMESTAMP and re.match(r"[0-9]{4}-", text):
            return text
        actual = _RESOLVED_TAGS[type(value)]
        if actual == tag:
            return value
        if tag == _FLOAT and actual == _INT:
            return float(value)
        raise _NodeError(f"cannot decode {_tag_name(actual)} `{text}` as a {_tag_name(tag)}",
                     node)
    return text  # an application tag: yaml.v2 keeps the text


class _Decoder:
    """Turns composed YAML nodes into Go-shaped Python values, counting the nodes it visits."""

    def __init__(self) -> None:
        self.visited = 0

    def _visit(self, node: Node) -> None:
        self.visited += 1
        if self.visited > _MAX_NODES:
            raise _NodeError(f"more than {_MAX_NODES} YAML nodes after expanding aliases", node)

    def entries(self, node: MappingNode) -> Iterator[tuple[Node, Node]]:
        """The key/value pairs of a mapping with merge keys (<<) expanded in yaml.v2's order:
        in place, later keys overriding earlier ones, earlier merged maps winning over later."""
        for key, value in node.value:
            self._visit(key)
            if isinstance(key, ScalarNode) and key.value == "<<" and key.tag in (_PLAIN, _MERGE):
                merged = value.value[::-1] if isinstance(value, SequenceNode) else [value]
                for item in merged:
                    if not isinstance(item, MappingNode):
                        raise _NodeError("map merge requires map or sequence of maps as the value",
                                         item)
                    yield from self.entries(item)
            else:
                yield key, value

    def key_text(self, node: Node) -> str:
        """A key decoded into a Go string: the scalar's text as written (null gives "")."""
        if not isinstance(node, ScalarNode):
            raise _NodeError("a mapping key must be a plain value, not a mapping or list", node)
        value = _scalar(node)
        if value is None:
            return ""
        return value if node.tag == _BINARY else node.value

    def any(self, node: Node) -> Any:
        """A node decoded into interface{}: scalars resolved, lists, and _AnyMap mappings."""
        self._visit(node)
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if isinstance(node, SequenceNode):
            return [self.any(item) for item in node.value]
        result = _AnyMap()
        for key_node, value_node in self.entries(node):
            key = self.any(key_node)
            if isinstance(key, (dict, list)) or (isinstance(key, float) and math.isnan(key)):
                raise _NodeError("invalid map key (a mapping or list)", key_node)
            result[key] = self.any(value_node)
        return result

    def fill_params(self, node: Node | None, target: _StrMap, what: str) -> _StrMap:
        """Decode a node into a Go map[string]interface{} (a driver's or section's
        parameters): a mapping fills ``target``, null leaves it empty, anything else fails."""
        if node is None or _is_null(node):
            return target
        if not isinstance(node, MappingNode):
            raise _NodeError(f"{what} must be a mapping of parameters, not {_node_kind(node)}",
                             node)
        self._visit(node)
        for key_node, value_node in self.entries(node):
            target[self.key_text(key_node)] = self.any(value_node)
        return target

    def storage(self, node: Node | None) -> _StrMap | None:
        """Decode the storage section as Storage.UnmarshalYAML does: a mapping of driver and
        section names to parameters with at most one driver, or a bare driver name; null is
        no storage at all."""
        if node is None or _is_null(node):
            return None
        if isinstance(node, ScalarNode):
            value = _scalar(node)
            if not isinstance(value, str):
                raise _NodeError(f"storage is {_describe(value)}, which names no storage driver",
                                 node)
            return _StrMap({node.value: _StrMap()})
        if not isinstance(node, MappingNode):
            raise _NodeError(f"storage must be a mapping, not {_node_kind(node)}", node)
        self._visit(node)
        result = _StrMap()
        for key_node, value_node in self.entries(node):
            name = self.key_text(key_node)
            if _is_null(value_node):
                result[name] = None
            else:
                result[name] = self.fill_params(value_node, _StrMap(), f"storage.{name}")
        drivers = _drivers(result)
        if len(drivers) > 1:
            raise _NodeError(f"storage names {len(drivers)} drivers ({', '.join(drivers)}); "
                             "the registry takes exactly one", node)
        return result

    def string(self, node: Node | None, what: str) -> str:
        """Decode a node into a Go string: a scalar's text as written, null as ""."""
        if node is None:
            return ""
        if not isinstance(node, ScalarNode):
            raise _NodeError(f"{what} must be a single value, not {_node_kind(node)}", node)
        value = _scalar(node)
        return "" if value is None else node.value


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag in (_PLAIN, _NULL) and \
        _resolve_plain(node.value) is None


def _node_kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _describe(_scalar(node)) if isinstance(node, ScalarNode) else "a value"


def _describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _drivers(storage: Mapping[str, Any]) -> list[str]:
    return [name for name in storage if name not in _NON_DRIVER_KEYS]


def _compose(text: str) -> Node | None:
    """Compose the first YAML document of ``text`` (yaml.v2 reads only the first)."""
    loader = _Loader(text)
    try:
        return loader.get_node() if loader.check_node() else None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def _read_text(path: Path) -> str:
    """Read the config file as text, with the encodings the registry's YAML reader accepts."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; name the registry's config.yml (the file given to "
            f"`registry serve`), set {CONFIGURATION_PATH_VARIABLE}, or use --root DIR for a "
            "store without a config", path) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file; name the registry's "
                          "config.yml inside it", path) from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied; run regstore as a user that can read it "
                          "(the registry's own user, or root)", path) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}); check the path and "
                          "the disk", path) from None
    # libyaml (and so the registry) detects UTF-16 by its byte-order mark, else expects UTF-8.
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: broken UTF-16 text; re-save the file as UTF-8",
                              path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); the registry "
            "reads only UTF-8; re-save the file as UTF-8", path) from None


# --- Resolution: file, then environment, then what regstore reads -------------------------------

class _Resolution:
    """The registry's view of one config file while it is being resolved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.decoder = _Decoder()
        self.storage: _StrMap | None = None
        self.file_had_storage = False
        self.redis_addr = ""
        self.warnings: list[str] = []
        # (variable, lower-cased storage key path it set), in the order applied.
        self.applied: list[tuple[str, tuple[str, ...]]] = []

    # errors and provenance

    def error(self, message: str, key: str | None = None) -> ConfigError:
        return ConfigError(f"{self.path}: {message}", self.path, key)

    def file_error(self, exc: _NodeError, key: str | None = None) -> ConfigError:
        line = f", line {exc.line}" if exc.line is not None else ""
        return ConfigError(f"{self.path}{line}: {exc.message}; the registry refuses this file "
                           "too; correct it", self.path, key)

    def source(self, keys: tuple[str, ...]) -> str | None:
        """The environment variable that last set ``keys`` of storage (or a map around or
        inside it), if any."""
        lowered = tuple(key.lower() for key in keys)
        for name, env_keys in reversed(self.applied):
            shorter = min(len(lowered), len(env_keys))
            if lowered[:shorter] == env_keys[:shorter]:
                return name
        return None

    def where(self, keys: tuple[str, ...]) -> str:
        dotted = ".".join(("storage",) + keys)
        name = self.source(keys)
        return f"{dotted} (set by {name})" if name else dotted

    # the file

    def read_file(self, text: str) -> None:
        try:
            root = _compose(text)
        except yaml.YAMLError as exc:
            raise self.error(f"not valid YAML ({_yaml_problem(exc)}); the registry refuses it "
                             "too; fix the YAML") from None
        except RecursionError:
            raise self.error("YAML nested too deeply; the registry would refuse it") from None
        fields: dict[str, Node] = {}
        try:
            if root is not None and not _is_null(root) and not isinstance(root, MappingNode):
                raise _NodeError(f"the top level is {_node_kind(root)}, not a mapping; a "
                                 "registry config is a mapping with version, storage, http, …",
                                 root)
            if isinstance(root, MappingNode):
                for key_node, value_node in self.decoder.entries(root):
                    fields[self.decoder.key_text(key_node)] = value_node
            self.read_version(fields.get("version"))
            self.storage = self.decoder.storage(fields.get("storage"))
            self.file_had_storage = self.storage is not None
            self.redis_addr = self.read_redis(fields.get("redis"))
        except _NodeError as exc:
            raise self.file_error(exc) from None
        except RecursionError:
            raise self.error("YAML nested too deeply (an alias that contains itself?); the "
                             "registry would refuse it") from None

    def read_version(self, node: Node | None) -> None:
        text = self.decoder.string(node, "version")
        if text == "0.1":
            return
        if not text:
            raise self.error("no `version: 0.1`; the registry refuses a config without it "
                             "('unsupported version'); add `version: 0.1` at the top", "version")
        line = f" (line {node.start_mark.line + 1})" if node is not None else ""
        raise self.error(f"version {text!r}{line} is not supported; the registry 2.8 reads "
                         "only `version: 0.1`; write that", "version")

    def read_redis(self, node: Node | None) -> str:
        if node is None or _is_null(node):
            return ""
        if not isinstance(node, MappingNode):
            raise _NodeError(f"redis must be a mapping (addr, password, db, …), not "
                             f"{_node_kind(node)}", node)
        addr = ""
        for key_node, value_node in self.decoder.entries(node):
            if self.decoder.key_text(key_node) == "addr":
                addr = self.decoder.string(value_node, "redis.addr")
        return addr

    # the environment

    def apply_environment(self, environ: Mapping[str, str]) -> None:
        # Byte order of the names, as the registry sorts them (configuration/parser.go), so a
        # whole section (REGISTRY_STORAGE) is set before its keys (REGISTRY_STORAGE_…).
        names = sorted((name for name in environ if name.startswith(_ENV_PREFIX)),
                       key=lambda name: name.encode("utf-8", "surrogateescape"))
        for name in names:
            parts = name.split("_")[1:]
            head = parts[0]
            if head == "STORAGE":
                self.override_storage(name, parts[1:], environ[name])
            elif head == "REDIS":
                self.override_redis(name, parts[1:], environ[name])
            elif head.upper() in ("STORAGE", "REDIS"):
                # Struct fields match only the name in capitals; the registry logs
                # "Ignoring unrecognized environment variable".
                self.warnings.append(
                    f"the registry ignores {name}: after REGISTRY_ the field must be in capitals "
                    f"(REGISTRY_{head.upper()}_…); regstore ignores it too")

    def payload(self, name: str, value: str) -> Node | None:
        """Compose an environment value as YAML, as the registry parses every override."""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.error(f"{name} is not UTF-8 text; the registry refuses it; set it again "
                             "in UTF-8", name) from None
        try:
            return _compose(value)
        except yaml.YAMLError as exc:
            raise self.error(f"{name} is not valid YAML ({_yaml_problem(exc)}); the registry "
                             "refuses to start with it; quote it as YAML, e.g. "
                             "'{\"enabled\": true}' for a mapping", name) from None
        except RecursionError:
            raise self.error(f"{name} nests too deeply", name) from None

    def override_storage(self, name: str, path: list[str], value: str) -> None:
        node = self.payload(name, value)
        try:
            if not path:
                if self.file_had_storage:
                    self.warnings.append(
                        f"{name} replaces the whole storage section of {self.path}, "
                        "maintenance, delete and cache included, as the registry does")
                self.storage = self.decoder.storage(node)
                self.applied.append((name, ()))
                return
            if self.storage is None:
                self.storage = _StrMap()
            self.override_map(name, self.storage, path, node, (), sections=True)
        except _NodeError as exc:
            raise self.error(f"{name}: {exc.message}; the registry refuses it", name) from None
        except RecursionError:
            raise self.error(f"{name} nests too deeply", name) from None

    def override_map(self, name: str, target: _StrMap, path: list[str], node: Node | None,
                     done: tuple[str, ...], sections: bool = False) -> None:
        """Set ``path`` inside a Go map[string]… as the registry's overwriteMap does: an existing
        key is matched in capitals and descended into unless empty; otherwise the key is
        (re)created in lower case. ``sections`` marks the storage map itself, whose values are
        parameter maps rather than untyped values."""
        head = path[0]
        if len(path) > 1:
            for key in list(target):
                if key.upper() == head:
                    current = target[key]
                    if current is None:
                        break  # an empty value is recreated, as the registry does
                    self.override_value(name, current, path[1:], node, done + (key,))
                    return
        if len(path) > 1:
            created = _StrMap()
            self.override_map(name, created, path[1:], node, done + (head.lower(),))
            target[head.lower()] = created
            return
        keys = tuple(key.lower() for key in done) + (head.lower(),)
        if sections:
            target[head.lower()] = self.decoder.fill_params(node, _StrMap(),
                                                            ".".join(("storage",) + keys))
        else:
            target[head.lower()] = None if node is None else self.decoder.any(node)
        self.applied.append((name, keys))

    def override_value(self, name: str, current: Any, path: list[str], node: Node | None,
                       done: tuple[str, ...]) -> None:
        if isinstance(current, _StrMap):
            self.override_map(name, current, path, node, done)
        elif isinstance(current, _AnyMap):
            # The registry logs "Ignoring environment variable … involving map with non-string
            # keys": it cannot reach into a mapping that came from YAML (distribution#1736).
            where = self.where(done)
            if not self.source(done):
                where += f" in {self.path}"
            self.warnings.append(
                f"the registry ignores {name} (\"involving map with non-string keys\") because "
                f"{where} is a YAML mapping; regstore ignores it too; to override it from the "
                f"environment set the whole mapping, e.g. {_ENV_PREFIX}STORAGE_"
                f"{'_'.join(k.upper() for k in done)}='{{\"{path[0].lower()}\": …}}'")
        else:
            self.warnings.append(
                f"the registry ignores {name} because {self.where(done)} is "
                f"{_describe(current)}, not a mapping; regstore ignores it too")

    def override_redis(self, name: str, path: list[str], value: str) -> None:
        # Only the parts regstore reads: the whole section, and its address.
        if path and path != ["ADDR"]:
            return
        node = self.payload(name, value)
        try:
            if path:
                self.redis_addr = self.decoder.string(node, name)
            else:
                self.redis_addr = self.read_redis(node)
        except _NodeError as exc:
            raise self.error(f"{name}: {exc.message}; the registry refuses it", name) from None

    # what regstore reads

    def result(self) -> RegistryConfig:
        storage = self.storage if self.storage is not None else _StrMap()
        drivers = _drivers(storage)
        if len(drivers) > 1:
            sources = [self.source((driver,)) for driver in drivers]
            added = "; ".join(f"{driver} comes from {source}" for driver, source
                              in zip(drivers, sources) if source)
            raise self.error(
                f"more than one storage driver after the environment is applied "
                f"({', '.join(drivers)}){'; ' + added if added else ''}; the registry refuses "
                "this ('multiple storage drivers specified'); keep one, or set REGISTRY_STORAGE "
                "to the driver you mean, which replaces the file's storage section", "storage")
        if not drivers or drivers[0] == "":
            raise self.error(
                "no storage driver configured; the registry refuses this ('no storage "
                "configuration provided'); add e.g. `storage: {filesystem: {rootdirectory: "
                "/var/lib/registry}}`", "storage")
        driver = drivers[0]
        params = storage.get(driver) or _StrMap()
        maintenance = storage.get("maintenance")
        # Each reader may add warnings, so all of them run before the warnings are collected.
        root = self.root(params) if driver == "filesystem" else None
        readonly = self.readonly(maintenance)
        delete_enabled = self.delete_enabled(storage.get("delete"))
        cache = self.cache(storage)
        upload_purging = self.upload_purging(maintenance)
        return RegistryConfig(
            path=self.path,
            driver=driver,
            driver_params=MappingProxyType(_plain(params)),
            root=root,
            readonly=readonly,
            delete_enabled=delete_enabled,
            blobdescriptor_cache=cache,
            redis_addr=self.redis_addr or None,
            upload_purging=upload_purging,
            warnings=tuple(self.warnings),
        )

    def root(self, params: Mapping[str, Any]) -> Path:
        raw = params.get("rootdirectory", _MISSING)
        keys = ("filesystem", "rootdirectory")
        key = "storage.filesystem.rootdirectory"
        if raw is _MISSING:
            return DEFAULT_ROOT
        if not isinstance(raw, str):
            # The driver takes fmt.Sprint of any value: 5 becomes the relative directory "5",
            # an empty value "<nil>". Never what the operator meant.
            raise self.error(
                f"{self.where(keys)} is {_describe(raw)}, not a directory path; the registry "
                "would take its text as a directory relative to where it runs; write an "
                "absolute path, e.g. /var/lib/registry (quoted if it looks like a number)", key)
        if raw == "":
            raise self.error(
                f"{self.where(keys)} is empty; the registry would then keep its store under / "
                "(path.Join drops an empty root); write the absolute path of the store", key)
        if "\0" in raw:
            raise self.error(f"{self.where(keys)} contains a NUL character; write the path "
                             "of the store", key)
        cleaned = _go_clean(raw)
        if cleaned.startswith("/"):
            return Path(cleaned)
        # The driver joins the relative root onto every path, so the kernel resolves it against
        # the working directory of whichever process runs: here, ours.
        root = Path(os.getcwd()) / cleaned
        self.warnings.append(
            f"{self.where(keys)} {raw!r} is relative; regstore resolves it against the current "
            f"directory, as `registry garbage-collect` does: {root}; the running registry "
            "resolves it against its own working directory (/ for Debian's service and the "
            "official image); make it absolute, or pass --root, if they differ")
        return root

    def readonly(self, maintenance: Mapping[str, Any] | None) -> bool:
        # registry/handlers/app.go: readonly must be a YAML mapping; enabled, if present, a bool.
        if not maintenance or "readonly" not in maintenance:
            return False
        value = maintenance["readonly"]
        keys = ("maintenance", "readonly")
        key = "storage.maintenance.readonly"
        self.require_yaml_mapping(value, keys, key, "readonly",
                                  '{"enabled": true}', "readonly: {enabled: true}")
        enabled = value.get("enabled", False)
        if not isinstance(enabled, bool):
            raise self.error(
                f"{self.where(keys)}.enabled is {_describe(enabled)}, not true or false; the "
                "registry refuses to start ('readonly's enabled config key must have a boolean "
                "value'); write `enabled: true` or `enabled: false`", key + ".enabled")
        return enabled

    def require_yaml_mapping(self, value: Any, keys: tuple[str, ...], key: str, leaf: str,
                             json_form: str, yaml_form: str) -> None:
        """Fail as registry serve does when a maintenance entry is not a YAML mapping."""
        if isinstance(value, _AnyMap):
            return
        panic = f"'{leaf} config key must contain additional keys'"
        variable = f"{_ENV_PREFIX}{'_'.join(('STORAGE',) + tuple(k.upper() for k in keys))}"
        if isinstance(value, _StrMap):
            setter = self.source(keys + ("enabled",)) or self.source(keys) or "the environment"
            raise self.error(
                f"{setter} builds {key} as a map the registry 2.8 rejects at start ({panic}; "
                f"distribution#1736); set {variable}='{json_form}' instead", key)
        raise self.error(
            f"{self.where(keys)} is {_describe(value)}, not a mapping; the registry refuses to "
            f"start ({panic}); write `{yaml_form}` or remove it", key)

    def delete_enabled(self, section: Mapping[str, Any] | None) -> bool:
        # app.go enables deletes only for the boolean true; anything else silently disables.
        if not section or "enabled" not in section:
            return False
        enabled = section["enabled"]
        if not isinstance(enabled, bool):
            self.warnings.append(
                f"{self.where(('delete', 'enabled'))} is {_describe(enabled)}, not true or "
                "false; the registry then keeps deletes disabled, and regstore reads it so")
            return False
        return enabled

    def cache(self, storage: Mapping[str, Any]) -> str | None:
        section = storage.get("cache")
        if not section:
            return None
        # "layerinfo" is the older name of the same setting (app.go).
        value = section.get("blobdescriptor", section.get("layerinfo"))
        if isinstance(value, str) and value in ("inmemory", "redis"):
            if value == "redis" and not self.redis_addr:
                self.warnings.append(
                    "storage.cache.blobdescriptor is redis but redis.addr is not set; the "
                    "registry refuses to start ('redis configuration required')")
            return value
        if value is not None and value != "":
            self.warnings.append(
                f"{self.where(('cache', 'blobdescriptor'))} is {_describe(value)}; the registry "
                "knows inmemory and redis only and runs without a cache")
        return None

    def upload_purging(self, maintenance: Mapping[str, Any] | None) -> UploadPurging:
        # app.go: a given uploadpurging mapping replaces every default; unless enabled is the
        # boolean false, age, interval (duration strings) and dryrun (bool) must all be there.
        if not maintenance or "uploadpurging" not in maintenance:
            return _DEFAULT_PURGING
        value = maintenance["uploadpurging"]
        keys = ("maintenance", "uploadpurging")
        key = "storage.maintenance.uploadpurging"
        self.require_yaml_mapping(value, keys, key, "uploadpurging", '{"enabled": false}',
                                  "uploadpurging: {enabled: false}")
        enabled = value.get("enabled", True)
        if enabled is False:
            return UploadPurging(False, _DEFAULT_PURGE_AGE, _DEFAULT_PURGE_INTERVAL, False)
        if not isinstance(enabled, bool):
            self.warnings.append(
                f"{self.where(keys)}.enabled is {_describe(enabled)}, not a boolean; the "
                "registry purges uploads unless it is the boolean false")
        age = self.purge_duration(value, "age", keys)
        interval = self.purge_duration(value, "interval", keys)
        dryrun = value.get("dryrun", _MISSING)
        if not isinstance(dryrun, bool):
            reason = "dryrun missing" if dryrun is _MISSING else "cannot parse dryrun"
            found = "missing" if dryrun is _MISSING else _describe(dryrun)
            raise self.error(
                f"{self.where(keys)}.dryrun is {found}; "
                f"the registry refuses to start ('Unable to parse upload purge configuration: "
                f"{reason}'); a given uploadpurging mapping needs all of enabled, age, interval "
                "and dryrun (true or false)", key + ".dryrun")
        return UploadPurging(True, age, interval, dryrun)

    def purge_duration(self, section: Mapping[str, Any], name: str,
                       keys: tuple[str, ...]) -> float:
        key = f"storage.maintenance.uploadpurging.{name}"
        value = section.get(name, _MISSING)
        example = "168h" if name == "age" else "24h"
        if value is _MISSING:
            raise self.error(
                f"{self.where(keys)} has no {name}; the registry refuses to start ('Unable to "
                f"parse upload purge configuration: {name} missing'); a given uploadpurging "
                f"mapping replaces all defaults, so write e.g. {name}: {example}", key)
        if not isinstance(value, str):
            raise self.error(
                f"{self.where(keys)}.{name} is {_describe(value)}, not a duration string; the "
                f"registry refuses to start ('{name} is not a string'); write e.g. "
                f"{name}: {example}", key)
        try:
            return parse_go_duration(value)
        except ValueError as exc:
            raise self.error(
                f"{self.where(keys)}.{name} {value!r} is not a Go duration ({exc}); the "
                f"registry refuses to start; use units ns, us, ms, s, m, h, e.g. {example}",
                key) from None


def _go_clean(text: str) -> str:
    """Lexically clean a slash path as Go's path.Clean does (the driver's path.Join)."""
    cleaned = posixpath.normpath(text)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def _plain(value: Any) -> Any:
    """Copy Go-shaped values into plain dicts and lists for the outside world."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
