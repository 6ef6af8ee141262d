"""Tests for regstore.config: the registry's config.yml and REGISTRY_* overrides, resolved as
CNCF Distribution 2.8 resolves them (configuration/parser.go, registry/handlers/app.go)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regstore.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_ROOT,
    ConfigError,
    RegistryConfig,
    UploadPurging,
    config_for_root,
    default_config_path,
    load_config,
    parse_go_duration,
    require_filesystem,
)

DEFAULT_PURGING = UploadPurging(enabled=True, age_seconds=168 * 3600.0,
                                interval_seconds=24 * 3600.0, dryrun=False)

# The config Debian's docker-registry 2.8.2 package installs as /etc/docker/registry/config.yml.
DEBIAN_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: basic-realm
    path: /etc/docker/registry
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""


def write_config(tmp_path: Path, text: str, name: str = "config.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def fs_config(root: str = "/srv/registry", extra: str = "") -> str:
    """A minimal filesystem config; ``extra`` is indented under ``storage:``."""
    body = "".join(f"  {line}\n" for line in extra.splitlines())
    return f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n{body}"


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> RegistryConfig:
    return load_config(write_config(tmp_path, text), env or {})


def config_error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {})
    error = caught.value
    assert error.exit_code == 3
    assert error.path == path
    assert str(path) in str(error)
    assert "\n" not in str(error)
    return error


# --- durations ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("168h", 604800.0),
    ("24h", 86400.0),
    ("30m", 1800.0),
    ("1h30m", 5400.0),
    ("1.5h", 5400.0),
    ("90s", 90.0),
    ("300ms", 0.3),
    ("1us", 1e-6),
    ("1\u00b5s", 1e-6),
    ("1\u03bcs", 1e-6),
    ("2ns", 2e-9),
    (".5s", 0.5),
    ("5.s", 5.0),
    ("0", 0.0),
    ("-0", 0.0),
    ("+0", 0.0),
    ("0s", 0.0),
    ("-1h", -3600.0),
    ("+5s", 5.0),
    ("1h1h", 7200.0),
    ("2562047h", 2562047 * 3600.0),
    # Go keeps the fraction in float64 and truncates to whole nanoseconds.
    ("1.0000000001s", 1.0),
])
def test_go_duration_accepts_what_go_accepts(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds, rel=1e-12, abs=0)


@pytest.mark.parametrize("text, message", [
    ("", 'time: invalid duration ""'),
    ("10", 'time: missing unit in duration "10"'),
    ("7d", 'time: unknown unit "d" in duration "7d"'),
    ("1H", 'time: unknown unit "H" in duration "1H"'),
    ("1h ", 'time: unknown unit "h " in duration "1h "'),
    (" 1h", 'time: invalid duration " 1h"'),
    (".", 'time: invalid duration "."'),
    ("h", 'time: invalid duration "h"'),
    ("-", 'time: invalid duration "-"'),
    ("1.2.3s", 'time: missing unit in duration "1.2.3s"'),
    ("2562048h", 'time: invalid duration "2562048h"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("99999999999999999999999h", 'time: invalid duration "99999999999999999999999h"'),
])
def test_go_duration_rejects_what_go_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_go_duration(text)
    assert str(caught.value) == message


def test_go_duration_allows_the_most_negative_duration() -> None:
    # Go's minimum Duration is -2**63 ns; +2**63 ns does not fit.
    assert parse_go_duration("-9223372036854775808ns") == -9223372036854775808 / 1e9


UNITS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(UNITS))),
                min_size=1, max_size=4))
def test_go_duration_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{number}{unit}" for number, unit in parts)
    nanoseconds = sum(number * UNITS[unit] for number, unit in parts)
    assert parse_go_duration(text) == nanoseconds / 10**9
    assert parse_go_duration("-" + text) == -nanoseconds / 10**9


# --- where the config is ------------------------------------------------------------------------

def test_default_config_path_is_the_official_location() -> None:
    assert default_config_path({}) == DEFAULT_CONFIG_PATH == Path("/etc/docker/registry/config.yml")


def test_default_config_path_honours_registry_configuration_path() -> None:
    environ = {"REGISTRY_CONFIGURATION_PATH": "/opt/registry/conf.yml"}
    assert default_config_path(environ) == Path("/opt/registry/conf.yml")


def test_empty_registry_configuration_path_is_ignored_like_the_registry_does() -> None:
    assert default_config_path({"REGISTRY_CONFIGURATION_PATH": ""}) == DEFAULT_CONFIG_PATH


def test_load_config_without_path_reads_registry_configuration_path(tmp_path: Path) -> None:
    path = write_config(tmp_path, fs_config("/from/env/path"), "elsewhere.yml")
    cfg = load_config(None, {"REGISTRY_CONFIGURATION_PATH": str(path)})
    assert cfg.path == path
    assert cfg.root == Path("/from/env/path")


def test_load_config_defaults_to_os_environ(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/from/os/environ")
    assert load_config(write_config(tmp_path, fs_config())).root == Path("/from/os/environ")


# --- what the file says -------------------------------------------------------------------------

def test_minimal_filesystem_config_gets_the_registry_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, "version: 0.1\nstorage:\n  filesystem: {}\n")
    assert cfg.driver == "filesystem"
    assert cfg.root == DEFAULT_ROOT == Path("/var/lib/registry")
    assert dict(cfg.driver_params) == {}
    assert cfg.readonly is False
    assert cfg.delete_enabled is False
    assert cfg.blobdescriptor_cache is None
    assert cfg.redis_addr is None
    assert cfg.upload_purging == DEFAULT_PURGING
    assert cfg.warnings == ()


@pytest.mark.parametrize("storage", ["storage: filesystem", "storage:\n  filesystem:",
                                     "storage:\n  filesystem: ~"])
def test_driver_without_parameters_uses_default_root(tmp_path: Path, storage: str) -> None:
    cfg = load(tmp_path, f"version: 0.1\n{storage}\n")
    assert (cfg.driver, cfg.root, dict(cfg.driver_params)) == ("filesystem", DEFAULT_ROOT, {})


def test_debian_shipped_config(tmp_path: Path) -> None:
    cfg = load(tmp_path, DEBIAN_CONFIG)
    assert cfg.driver == "filesystem"
    assert cfg.root == Path("/var/lib/docker-registry")
    assert cfg.delete_enabled is True
    assert cfg.blobdescriptor_cache == "inmemory"
    assert cfg.readonly is False
    assert cfg.warnings == ()


def test_full_config(tmp_path: Path) -> None:
    cfg = load(tmp_path, """\
version: "0.1"
storage:
  filesystem:
    rootdirectory: /data/registry/
    maxthreads: 50
  maintenance:
    readonly:
      enabled: true
    uploadpurging:
      enabled: true
      age: 72h
      interval: 1h30m
      dryrun: true
  delete:
    enabled: true
  cache:
    blobdescriptor: redis
redis:
  addr: localhost:6379
  db: 0
""")
    assert cfg.root == Path("/data/registry")
    assert dict(cfg.driver_params) == {"rootdirectory": "/data/registry/", "maxthreads": 50}
    assert cfg.readonly is True
    assert cfg.delete_enabled is True
    assert cfg.blobdescriptor_cache == "redis"
    assert cfg.redis_addr == "localhost:6379"
    assert cfg.upload_purging == UploadPurging(True, 72 * 3600.0, 5400.0, True)
    assert cfg.warnings == ()


def test_legacy_layerinfo_names_the_cache(tmp_path: Path) -> None:
    assert load(tmp_path, fs_config(extra="cache: {layerinfo: inmemory}")).blobdescriptor_cache \
        == "inmemory"


def test_yaml_11_booleans_as_the_registry_reads_them(tmp_path: Path) -> None:
    # gopkg.in/yaml.v2 takes y/n/on/off as booleans; PyYAML alone would not take y.
    cfg = load(tmp_path, fs_config(extra="maintenance: {readonly: {enabled: y}}\n"
                                         "delete: {enabled: on}"))
    assert cfg.readonly is True
    assert cfg.delete_enabled is True


def test_quoted_true_does_not_enable_deletes_and_says_so(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config(extra='delete: {enabled: "true"}'))
    assert cfg.delete_enabled is False
    assert any("storage.delete.enabled" in warning for warning in cfg.warnings)


def test_unknown_cache_type_is_a_warning(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config(extra="cache: {blobdescriptor: memcached}"))
    assert cfg.blobdescriptor_cache is None
    assert any("memcached" in warning for warning in cfg.warnings)


def test_redis_cache_without_redis_addr_is_a_warning(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config(extra="cache: {blobdescriptor: redis}"))
    assert cfg.blobdescriptor_cache == "redis"
    assert any("redis.addr" in warning for warning in cfg.warnings)


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    cfg = load(tmp_path, """\
version: 0.1
defaults: &params
  rootdirectory: /merged/root
  maxthreads: 30
storage:
  filesystem:
    <<: *params
    maxthreads: 40
""")
    assert cfg.root == Path("/merged/root")
    assert dict(cfg.driver_params) == {"rootdirectory": "/merged/root", "maxthreads": 40}


def test_duplicate_key_last_wins(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config("/first") + "  filesystem:\n    rootdirectory: /second\n")
    assert cfg.root == Path("/second")


def test_only_the_first_yaml_document_counts(tmp_path: Path) -> None:
    assert load(tmp_path, fs_config("/one") + "---\n" + fs_config("/two")).root == Path("/one")


def test_utf16_with_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_bytes(fs_config("/utf16/root").encode("utf-16"))
    assert load_config(path, {}).root == Path("/utf16/root")


def test_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_bytes(b"\xef\xbb\xbf" + fs_config("/bom/root").encode())
    assert load_config(path, {}).root == Path("/bom/root")


def test_root_is_cleaned_like_go_path_join(tmp_path: Path) -> None:
    assert load(tmp_path, fs_config("//srv//./registry/../reg/")).root == Path("/srv/reg")


def test_relative_root_resolves_against_cwd_like_garbage_collect(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load(tmp_path, fs_config("data/registry"))
    assert cfg.root == tmp_path / "data/registry"
    assert cfg.root.is_absolute()
    assert dict(cfg.driver_params) == {"rootdirectory": "data/registry"}
    assert len(cfg.warnings) == 1
    assert "relative" in cfg.warnings[0] and str(tmp_path / "data/registry") in cfg.warnings[0]


def test_s3_config(tmp_path: Path) -> None:
    cfg = load(tmp_path, "version: 0.1\nstorage:\n  s3:\n    bucket: images\n"
                         "    region: eu-west-1\n    rootdirectory: /prefix\n    secure: true\n")
    assert cfg.driver == "s3"
    assert cfg.root is None
    assert dict(cfg.driver_params) == {"bucket": "images", "region": "eu-west-1",
                                       "rootdirectory": "/prefix", "secure": True}


def test_driver_params_are_read_only(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config())
    with pytest.raises(TypeError):
        cfg.driver_params["rootdirectory"] = "/elsewhere"  # type: ignore[index]


# --- config_for_root and require_filesystem -----------------------------------------------------

def test_config_for_root(tmp_path: Path) -> None:
    cfg = config_for_root(tmp_path)
    assert cfg.path is None
    assert cfg.driver == "filesystem"
    assert cfg.root == tmp_path
    assert cfg.readonly is False
    assert cfg.delete_enabled is False
    assert cfg.blobdescriptor_cache is None
    assert cfg.redis_addr is None
    assert cfg.upload_purging == DEFAULT_PURGING
    assert require_filesystem(cfg) == tmp_path


def test_config_for_relative_root_is_absolute(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert config_for_root(Path("store")).root == tmp_path / "store"


def test_require_filesystem_returns_root(tmp_path: Path) -> None:
    assert require_filesystem(load(tmp_path, fs_config("/srv/x"))) == Path("/srv/x")


@pytest.mark.parametrize("driver, words", [
    ("s3", "needs a filesystem store, and the config uses the s3 driver"),
    ("gcs", "the gcs driver is not supported yet"),
    ("inmemory", "inmemory"),
    ("Filesystem", "lower-case"),
])
def test_require_filesystem_names_other_drivers(tmp_path: Path, driver: str, words: str) -> None:
    cfg = load(tmp_path, f"version: 0.1\nstorage:\n  {driver}: {{}}\n")
    with pytest.raises(ConfigError) as caught:
        require_filesystem(cfg)
    assert caught.value.exit_code == 3
    assert words in str(caught.value)
    assert str(cfg.path) in str(caught.value)
    assert caught.value.path == cfg.path


# --- environment overrides ----------------------------------------------------------------------

def test_env_root_directory_overrides_the_file(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config("/from/file", "delete: {enabled: true}"),
               {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/from/env"})
    assert cfg.root == Path("/from/env")
    assert dict(cfg.driver_params) == {"rootdirectory": "/from/env"}
    assert cfg.delete_enabled is True  # the rest of storage is untouched


def test_env_sets_root_when_the_driver_has_no_parameters(tmp_path: Path) -> None:
    env = {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/from/env"}
    assert load(tmp_path, "version: 0.1\nstorage: filesystem\n", env).root == Path("/from/env")
    assert load(tmp_path, "version: 0.1\nstorage:\n  filesystem:\n", env).root == Path("/from/env")


def test_env_last_part_always_sets_a_lower_case_key(tmp_path: Path) -> None:
    # Only keys on the way are matched in capitals; the last part (re)creates its key in lower
    # case (overwriteMap), so a mixed-case key in the file stays beside the new one.
    cfg = load(tmp_path, "version: 0.1\nstorage:\n  filesystem:\n    RootDirectory: /file\n"
                         "    maxthreads: 30\n",
               {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/env"})
    assert dict(cfg.driver_params) == {"RootDirectory": "/file", "maxthreads": 30,
                                       "rootdirectory": "/env"}
    assert cfg.root == Path("/env")


def test_lower_case_env_parts_replace_the_whole_driver_map(tmp_path: Path) -> None:
    # "filesystem" does not equal "FILESYSTEM", so the registry recreates the key, dropping
    # maxthreads (checked against docker-registry 2.8.2).
    cfg = load(tmp_path, "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /file\n"
                         "    maxthreads: 30\n",
               {"REGISTRY_STORAGE_filesystem_rootdirectory": "/env"})
    assert dict(cfg.driver_params) == {"rootdirectory": "/env"}


def test_lower_case_field_name_is_ignored_with_a_warning(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config("/file"), {"REGISTRY_storage_filesystem_rootdirectory": "/env"})
    assert cfg.root == Path("/file")
    assert any("REGISTRY_storage_filesystem_rootdirectory" in warning for warning in cfg.warnings)


def test_unrelated_and_foreign_variables_are_ignored(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config("/file"), {
        "REGISTRY_HTTP_ADDR": "{not: yaml",
        "REGISTRY_CONFIGURATION_PATH": "/nowhere.yml",
        "REGISTRY_": "x",
        "registry_storage": "s3",
        "STORAGE": "s3",
    })
    assert (cfg.driver, cfg.root, cfg.warnings) == ("filesystem", Path("/file"), ())


def test_env_delete_enabled(tmp_path: Path) -> None:
    assert load(tmp_path, fs_config(), {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}).delete_enabled
    assert not load(tmp_path, fs_config(extra="delete: {enabled: true}"),
                    {"REGISTRY_STORAGE_DELETE_ENABLED": "false"}).delete_enabled


def test_env_cache_and_redis(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config(), {"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR": "redis",
                                       "REGISTRY_REDIS_ADDR": "cache.local:6379"})
    assert cfg.blobdescriptor_cache == "redis"
    assert cfg.redis_addr == "cache.local:6379"
    assert cfg.warnings == ()


def test_env_redis_section_replaces_the_file_section(tmp_path: Path) -> None:
    text = fs_config() + "redis:\n  addr: file:6379\n"
    assert load(tmp_path, text, {"REGISTRY_REDIS": "{addr: 'env:6379', db: 2}"}).redis_addr \
        == "env:6379"
    assert load(tmp_path, text, {"REGISTRY_REDIS": "{db: 2}"}).redis_addr is None
    assert load(tmp_path, text, {"REGISTRY_REDIS_ADDR": ""}).redis_addr is None


def test_env_readonly_as_a_yaml_mapping(tmp_path: Path) -> None:
    for value in ('{"enabled": true}', "{enabled: true}", "enabled: true"):
        cfg = load(tmp_path, fs_config(), {"REGISTRY_STORAGE_MAINTENANCE_READONLY": value})
        assert cfg.readonly is True, value
    cfg = load(tmp_path, fs_config(extra="maintenance: {readonly: {enabled: true}}"),
               {"REGISTRY_STORAGE_MAINTENANCE_READONLY": '{"enabled": false}'})
    assert cfg.readonly is False


def test_env_maintenance_section_replaces_the_file_section(tmp_path: Path) -> None:
    text = fs_config(extra="maintenance:\n  uploadpurging: {enabled: false}")
    cfg = load(tmp_path, text, {"REGISTRY_STORAGE_MAINTENANCE": "{readonly: {enabled: true}}"})
    assert cfg.readonly is True
    assert cfg.upload_purging == DEFAULT_PURGING  # the file's uploadpurging went with the section


def test_env_variables_apply_in_name_order(tmp_path: Path) -> None:
    # REGISTRY_STORAGE_MAINTENANCE sorts before REGISTRY_STORAGE_MAINTENANCE_READONLY, so the
    # more specific one wins whatever order the environment lists them in.
    env = {"REGISTRY_STORAGE_MAINTENANCE_READONLY": "{enabled: false}",
           "REGISTRY_STORAGE_MAINTENANCE": "{readonly: {enabled: true}}"}
    assert load(tmp_path, fs_config(), env).readonly is False


def test_env_readonly_enabled_is_ignored_when_the_file_has_a_readonly_map(tmp_path: Path) -> None:
    # registry 2.8: "Ignoring environment variable … involving map with non-string keys".
    cfg = load(tmp_path, fs_config(extra="maintenance: {readonly: {enabled: false}}"),
               {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"})
    assert cfg.readonly is False
    assert len(cfg.warnings) == 1
    warning = cfg.warnings[0]
    assert "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED" in warning
    assert "non-string keys" in warning
    assert "REGISTRY_STORAGE_MAINTENANCE_READONLY=" in warning


@pytest.mark.parametrize("text", [fs_config(), fs_config(extra="maintenance: {}"),
                                  fs_config(extra="maintenance:\n  readonly:")])
def test_env_readonly_enabled_without_a_readonly_map_is_refused(tmp_path: Path, text: str) -> None:
    # registry serve panics: "readonly config key must contain additional keys".
    error = config_error(tmp_path, text, {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"})
    message = str(error)
    assert "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED" in message
    assert "readonly config key must contain additional keys" in message
    assert "REGISTRY_STORAGE_MAINTENANCE_READONLY='{\"enabled\": true}'" in message
    assert error.key == "storage.maintenance.readonly"


def test_env_uploadpurging(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config(),
               {"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING": "{enabled: false}"})
    assert cfg.upload_purging.enabled is False
    error = config_error(tmp_path, fs_config(),
                         {"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED": "false"})
    assert "uploadpurging config key must contain additional keys" in str(error)


def test_env_storage_names_a_driver_and_replaces_the_whole_section(tmp_path: Path) -> None:
    text = fs_config("/file", "maintenance: {readonly: {enabled: true}}\ndelete: {enabled: true}")
    cfg = load(tmp_path, text, {"REGISTRY_STORAGE": "s3"})
    assert cfg.driver == "s3"
    assert dict(cfg.driver_params) == {}
    assert cfg.root is None
    # the file's read-only mode went with its storage section, as in the registry
    assert cfg.readonly is False
    assert cfg.delete_enabled is False
    assert any("REGISTRY_STORAGE replaces the whole storage section" in w for w in cfg.warnings)


def test_env_storage_then_its_parameters(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config("/file"), {
        "REGISTRY_STORAGE_S3_REGION": "eu-west-1",
        "REGISTRY_STORAGE_S3_BUCKET": "images",
        "REGISTRY_STORAGE": "s3",
        "REGISTRY_STORAGE_S3_SECURE": "true",
    })
    assert cfg.driver == "s3"
    assert dict(cfg.driver_params) == {"bucket": "images", "region": "eu-west-1", "secure": True}


def test_env_storage_as_a_yaml_mapping(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config("/file"),
               {"REGISTRY_STORAGE": "{filesystem: {rootdirectory: /env}, delete: {enabled: true}}"})
    assert (cfg.root, cfg.delete_enabled) == (Path("/env"), True)


def test_env_storage_empty_then_parameters(tmp_path: Path) -> None:
    cfg = load(tmp_path, "version: 0.1\nstorage:\n  s3: {bucket: b}\n",
               {"REGISTRY_STORAGE": "", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/env"})
    assert (cfg.driver, cfg.root) == ("filesystem", Path("/env"))


def test_env_storage_supplies_a_missing_storage_section(tmp_path: Path) -> None:
    cfg = load(tmp_path, "version: 0.1\n", {"REGISTRY_STORAGE": "filesystem"})
    assert (cfg.driver, cfg.root) == ("filesystem", DEFAULT_ROOT)


def test_env_driver_parameters_as_a_yaml_mapping(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config("/file"), {"REGISTRY_STORAGE_FILESYSTEM": "rootdirectory: /env"})
    assert cfg.root == Path("/env")
    assert load(tmp_path, fs_config("/file"), {"REGISTRY_STORAGE_FILESYSTEM": ""}).root \
        == DEFAULT_ROOT


def test_env_values_are_yaml(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config(), {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "'/quoted'",
                                       "REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS": "0x40"})
    assert dict(cfg.driver_params) == {"rootdirectory": "/quoted", "maxthreads": 64}


# --- errors -------------------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.exit_code == 3
    assert caught.value.path == path
    assert str(path) in str(caught.value)
    assert "no such file" in str(caught.value)
    assert "--root" in str(caught.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {})
    assert "is a directory" in str(caught.value)
    assert caught.value.exit_code == 3


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, fs_config())

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.exit_code == 3
    assert str(path) in str(caught.value)
    assert "permission denied" in str(caught.value)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_permission_denied_for_real(tmp_path: Path) -> None:
    path = write_config(tmp_path, fs_config())
    path.chmod(0)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "permission denied" in str(caught.value)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    error = config_error(tmp_path, "version: 0.1\nstorage:\n  filesystem: {rootdirectory: /x\n")
    assert "not valid YAML" in str(error)
    assert "line 4" in str(error)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_bytes(b"version: 0.1\nstorage:\n  filesystem: {rootdirectory: /caf\xe9}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.exit_code == 3
    assert "not UTF-8" in str(caught.value)
    assert "line 3" in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("text, words", [
    ("- version: 0.1\n", "not a mapping"),
    ("just text\n", "not a mapping"),
    ("", "version: 0.1"),
    ("# only a comment\n", "version: 0.1"),
    ("storage: filesystem\n", "version: 0.1"),
    ("version: 0.2\nstorage: filesystem\n", "'0.2'"),
    ("version: 0.10\nstorage: filesystem\n", "'0.10'"),
    ("version: {a: b}\nstorage: filesystem\n", "version"),
])
def test_top_level_and_version_errors(tmp_path: Path, text: str, words: str) -> None:
    assert words in str(config_error(tmp_path, text))


@pytest.mark.parametrize("text, words", [
    ("version: 0.1\n", "no storage driver"),
    ("version: 0.1\nstorage:\n", "no storage driver"),
    ("version: 0.1\nStorage: filesystem\n", "no storage driver"),
    ("version: 0.1\nstorage:\n  delete: {enabled: true}\n", "no storage driver"),
    ("version: 0.1\nstorage: [filesystem]\n", "storage must be a mapping"),
    ("version: 0.1\nstorage: 5\n", "names no storage driver"),
    ("version: 0.1\nstorage:\n  filesystem: {}\n  s3: {}\n", "filesystem, s3"),
    ("version: 0.1\nstorage:\n  filesystem: /var/lib/registry\n", "storage.filesystem"),
    ("version: 0.1\nstorage:\n  filesystem: {}\n  delete: true\n", "storage.delete"),
    ("version: 0.1\nstorage: filesystem\nredis: localhost\n", "redis must be a mapping"),
])
def test_storage_shape_errors(tmp_path: Path, text: str, words: str) -> None:
    assert words in str(config_error(tmp_path, text))


@pytest.mark.parametrize("value, words", [
    ("5", "the number 5"),
    ("true", "the boolean true"),
    ("", "empty"),
    ("[a, b]", "a list"),
    ('""', "is empty"),
])
def test_bad_rootdirectory(tmp_path: Path, value: str, words: str) -> None:
    error = config_error(tmp_path, fs_config(value))
    assert "storage.filesystem.rootdirectory" in str(error)
    assert words in str(error)
    assert error.key == "storage.filesystem.rootdirectory"


@pytest.mark.parametrize("value", ["", "5", "~"])
def test_bad_rootdirectory_from_env_names_the_variable(tmp_path: Path, value: str) -> None:
    # The registry would use "<nil>" or "5" as a relative directory; regstore refuses.
    error = config_error(tmp_path, fs_config(),
                         {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": value})
    assert "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY" in str(error)
    assert "storage.filesystem.rootdirectory" in str(error)


@pytest.mark.parametrize("readonly, words", [
    ("readonly: {enabled: yes-please}", "the string 'yes-please', not true or false"),
    ("readonly: {enabled: 1}", "the number 1"),
    ("readonly: true", "not a mapping"),
    ("readonly:", "empty, not a mapping"),
])
def test_bad_readonly(tmp_path: Path, readonly: str, words: str) -> None:
    error = config_error(tmp_path, fs_config(extra=f"maintenance:\n  {readonly}"))
    assert "storage.maintenance.readonly" in str(error)
    assert words in str(error)


def test_readonly_without_enabled_is_not_readonly(tmp_path: Path) -> None:
    assert load(tmp_path, fs_config(extra="maintenance: {readonly: {}}")).readonly is False


@pytest.mark.parametrize("purging, expected", [
    ("{enabled: false}", UploadPurging(False, 168 * 3600.0, 24 * 3600.0, False)),
    ("{enabled: false, age: nonsense}", UploadPurging(False, 168 * 3600.0, 24 * 3600.0, False)),
    ("{age: 1h, interval: 10m, dryrun: false}", UploadPurging(True, 3600.0, 600.0, False)),
    ("{enabled: true, age: 0, interval: 1s, dryrun: true}", None),
])
def test_upload_purging(tmp_path: Path, purging: str, expected: UploadPurging | None) -> None:
    text = fs_config(extra=f"maintenance:\n  uploadpurging: {purging}")
    if expected is None:
        # age: 0 is the number 0, and the registry wants a string
        assert "not a duration string" in str(config_error(tmp_path, text))
    else:
        assert load(tmp_path, text).upload_purging == expected


def test_upload_purging_string_false_still_purges(tmp_path: Path) -> None:
    cfg = load(tmp_path, fs_config(extra='maintenance:\n  uploadpurging: {enabled: "false", '
                                         'age: 2h, interval: 1h, dryrun: false}'))
    assert cfg.upload_purging.enabled is True
    assert any("uploadpurging.enabled" in warning for warning in cfg.warnings)


@pytest.mark.parametrize("purging, words", [
    ("{enabled: true}", "has no age"),
    ("{enabled: true, age: 1h}", "has no interval"),
    ("{enabled: true, age: 1h, interval: 1h}", "dryrun is missing"),
    ("{age: 1h, interval: 1h, dryrun: maybe}", "dryrun is the string 'maybe'"),
    ("{age: 7d, interval: 1h, dryrun: false}", 'unknown unit "d"'),
    ("{age: 1h, interval: '10', dryrun: false}", "missing unit"),
    ("{age: 10, interval: 1h, dryrun: false}", "not a duration string"),
    ("true", "not a mapping"),
])
def test_bad_upload_purging(tmp_path: Path, purging: str, words: str) -> None:
    error = config_error(tmp_path, fs_config(extra=f"maintenance:\n  uploadpurging: {purging}"))
    assert "storage.maintenance.uploadpurging" in str(error)
    assert words in str(error)


@pytest.mark.parametrize("name, value, words", [
    ("REGISTRY_STORAGE_MAINTENANCE_READONLY", "{enabled: true", "not valid YAML"),
    ("REGISTRY_STORAGE_FILESYSTEM", "somestring", "must be a mapping"),
    ("REGISTRY_STORAGE_LOG", "somestring", "must be a mapping"),
    ("REGISTRY_STORAGE", "[a, b]", "storage must be a mapping"),
    ("REGISTRY_STORAGE", "{filesystem: {}, s3: {}}", "filesystem, s3"),
    ("REGISTRY_STORAGE_MAINTENANCE_READONLY", "{enabled: sure}", "not true or false"),
    ("REGISTRY_REDIS_ADDR", "[a]", "single value"),
    ("REGISTRY_REDIS", "localhost", "redis must be a mapping"),
    ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/caf\udce9", "not UTF-8"),
])
def test_env_errors_name_the_variable(tmp_path: Path, name: str, value: str, words: str) -> None:
    error = config_error(tmp_path, fs_config(), {name: value})
    assert name in str(error)
    assert words in str(error)


def test_env_adding_a_second_driver_is_refused(tmp_path: Path) -> None:
    error = config_error(tmp_path, "version: 0.1\nstorage:\n  s3: {bucket: b}\n",
                         {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/x"})
    assert "more than one storage driver" in str(error)
    assert "s3, filesystem" in str(error)
    assert "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY" in str(error)


def test_env_emptying_storage_leaves_no_driver(tmp_path: Path) -> None:
    assert "no storage driver" in str(config_error(tmp_path, fs_config(), {"REGISTRY_STORAGE": ""}))


def test_alias_bomb_is_an_error_not_a_hang(tmp_path: Path) -> None:
    lines = ["version: 0.1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    lines.append("storage:\n  filesystem:\n    bomb: *a8")
    assert "YAML nodes" in str(config_error(tmp_path, "\n".join(lines) + "\n"))


def test_self_referencing_merge_is_an_error(tmp_path: Path) -> None:
    error = config_error(tmp_path, "version: 0.1\nstorage:\n  filesystem: &f\n    <<: *f\n")
    assert str(tmp_path) in str(error)


YAML_PIECES = ["version: 0.1\n", "storage:\n", "  filesystem:\n", "    rootdirectory: ",
               "/srv\n", "  maintenance:\n", "    readonly: ", "{enabled: true}\n",
               "    uploadpurging: ", "{age: 1h}\n", "  s3: {}\n", "&a ", "*a\n", "<<: ",
               "[", "]", "{", "}", ": ", "- ", "~\n", "'", '"', "!!int ", "\t", "\n"]
ENV_NAMES = ["REGISTRY_STORAGE", "REGISTRY_STORAGE_FILESYSTEM", "REGISTRY_STORAGE_S3_BUCKET",
             "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "REGISTRY_STORAGE_MAINTENANCE",
             "REGISTRY_STORAGE_MAINTENANCE_READONLY", "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED",
             "REGISTRY_STORAGE_DELETE_ENABLED", "REGISTRY_REDIS", "REGISTRY_REDIS_ADDR",
             "REGISTRY_STORAGE__", "REGISTRY_STORAGE_filesystem"]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.one_of(st.text(max_size=120), st.lists(st.sampled_from(YAML_PIECES), max_size=25)
                 .map("".join)),
       st.dictionaries(st.sampled_from(ENV_NAMES),
                       st.one_of(st.text(max_size=30), st.sampled_from(YAML_PIECES)),
                       max_size=4))
def test_any_input_gives_a_config_or_a_config_error(text: str, env: dict[str, str]) -> None:
    # Never a traceback: whatever the file and the environment hold, the result is a config or
    # a one-line ConfigError with exit code 3.
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            cfg = load_config(path, env)
        except ConfigError as error:
            assert error.exit_code == 3
            assert "\n" not in str(error)
            assert str(path) in str(error)
        else:
            assert isinstance(cfg, RegistryConfig)
            assert (cfg.root is not None) == (cfg.driver == "filesystem")


# --- agreement with the real registry -----------------------------------------------------------

REGISTRY = shutil.which("docker-registry")
needs_registry = pytest.mark.skipif(REGISTRY is None, reason="docker-registry is not installed")


def registry_run(args: list[str], env: dict[str, str],
                 cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run docker-registry with only ``env`` as its REGISTRY_* variables."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    assert REGISTRY is not None
    return subprocess.run([REGISTRY, *args], env={**clean, **env}, cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)


def empty_store(root: Path) -> Path:
    for part in ("repositories", "blobs"):
        (root / "docker/registry/v2" / part).mkdir(parents=True)
    return root


@pytest.mark.registry
@needs_registry
def test_registry_agrees_on_env_root_directory(tmp_path: Path) -> None:
    store = empty_store(tmp_path / "store")
    (tmp_path / "elsewhere").mkdir()
    config = write_config(tmp_path, fs_config(str(tmp_path / "elsewhere")))
    env = {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(store)}

    without = registry_run(["garbage-collect", "--dry-run", str(config)], {}, tmp_path)
    assert without.returncode != 0
    assert "Path not found" in without.stderr
    with_env = registry_run(["garbage-collect", "--dry-run", str(config)], env, tmp_path)
    assert with_env.returncode == 0, with_env.stderr
    assert "0 blobs marked" in with_env.stdout

    assert require_filesystem(load_config(config, {})) == tmp_path / "elsewhere"
    assert require_filesystem(load_config(config, env)) == store


@pytest.mark.registry
@needs_registry
def test_registry_agrees_that_registry_storage_replaces_the_section(tmp_path: Path) -> None:
    store = empty_store(tmp_path / "store")
    config = write_config(tmp_path, "version: 0.1\nstorage:\n  s3:\n    bucket: none\n"
                                    "    region: us-east-1\n"
                                    "    regionendpoint: http://127.0.0.1:9\n"
                                    "  maintenance:\n    readonly: {enabled: true}\n")
    root_only = {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(store)}
    replaced = {"REGISTRY_STORAGE": "filesystem", **root_only}

    both = registry_run(["garbage-collect", "--dry-run", str(config)], root_only, tmp_path)
    assert both.returncode != 0
    assert "multiple storage drivers" in both.stderr
    with pytest.raises(ConfigError, match="more than one storage driver"):
        load_config(config, root_only)

    result = registry_run(["garbage-collect", "--dry-run", str(config)], replaced, tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = load_config(config, replaced)
    assert (cfg.driver, cfg.root, cfg.readonly) == ("filesystem", store, False)


@pytest.mark.registry
@needs_registry
def test_registry_agrees_on_readonly_enabled_variable(tmp_path: Path) -> None:
    store = empty_store(tmp_path / "store")
    env = {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"}
    # With a readonly mapping in the file, the variable is ignored (garbage-collect parses the
    # same configuration and logs the same warning).
    with_map = write_config(tmp_path, fs_config(str(store), "maintenance:\n  readonly: "
                                                            "{enabled: false}"), "with-map.yml")
    result = registry_run(["garbage-collect", "--dry-run", str(with_map)], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert ("Ignoring environment variable REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED "
            "involving map with non-string keys") in result.stderr
    assert load_config(with_map, env).readonly is False

    # Without one, registry serve refuses to start (it panics before listening).
    bare = write_config(tmp_path, fs_config(str(store)) + "http: {addr: '127.0.0.1:0'}\n",
                        "bare.yml")
    served = registry_run(["serve", str(bare)], env, tmp_path)
    assert served.returncode != 0
    assert "readonly config key must contain additional keys" in served.stderr
    with pytest.raises(ConfigError, match="readonly config key must contain additional keys"):
        load_config(bare, env)

