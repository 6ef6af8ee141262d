"""The s3 backend without a server: reading the registry's storage.s3 section, and the keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from regstore.config import ConfigError, load_config, s3_settings, storage_backend
from regstore.store.s3 import S3Settings, S3Store


def s3_config(tmp_path: Path, body: str, environ: dict[str, str] | None = None):
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nstorage:\n  s3:\n" + body)
    return load_config(path, environ or {})


def test_the_registry_s3_section_becomes_settings(tmp_path):
    cfg = s3_config(tmp_path, "    accesskey: AK\n    secretkey: SK\n    region: us-east-1\n"
                              "    regionendpoint: http://127.0.0.1:7480\n    bucket: reg\n"
                              "    rootdirectory: /some/prefix\n    secure: false\n"
                              "    v4auth: true\n")
    settings = storage_backend(cfg)
    assert settings == S3Settings(bucket="reg", region="us-east-1", rootdirectory="/some/prefix",
                                  endpoint="http://127.0.0.1:7480", accesskey="AK",
                                  secretkey="SK", secure=False, v4auth=True, path_style=True)
    assert settings.prefix() == "some/prefix/docker/registry/v2/"
    assert settings.state_prefix() == "some/prefix/.regstore/"


def test_defaults_and_the_aws_credential_chain(tmp_path):
    settings = s3_settings(s3_config(tmp_path, "    region: eu-west-1\n    bucket: reg\n"))
    assert (settings.endpoint, settings.secure, settings.v4auth, settings.path_style) == \
        (None, True, True, False)
    assert (settings.accesskey, settings.secretkey) == ("", "")  # boto3's usual chain
    assert settings.prefix() == "docker/registry/v2/"


@pytest.mark.parametrize("root, prefix", [
    ("", "docker/registry/v2/"), ("/", "docker/registry/v2/"), ("//", "docker/registry/v2/"),
    ("/a/b/", "a/b/docker/registry/v2/"), ("a", "a/docker/registry/v2/"),
])
def test_keys_are_where_the_registry_driver_puts_them(root, prefix):
    # distribution s3-aws: TrimLeft(TrimRight(root, "/") + "/docker/registry/v2/...", "/")
    assert S3Settings(bucket="b", region="r", rootdirectory=root).prefix() == prefix
    assert S3Store(None, "b", root).prefix == prefix


def test_environment_overrides_and_go_booleans(tmp_path):
    env = {"REGISTRY_STORAGE_S3_BUCKET": "other", "REGISTRY_STORAGE_S3_SECURE": "false",
           "REGISTRY_STORAGE_S3_REGIONENDPOINT": "ceph.example:7480",
           "REGISTRY_STORAGE_S3_FORCEPATHSTYLE": "False"}
    settings = s3_settings(s3_config(tmp_path, "    region: us-east-1\n    bucket: reg\n", env))
    assert settings.bucket == "other" and settings.secure is False
    # aws-sdk-go adds the scheme the secure flag asks for; forcepathstyle wins when given
    assert settings.endpoint == "http://ceph.example:7480" and settings.path_style is False


@pytest.mark.parametrize("body, words", [
    ("    region: us-east-1\n", "storage.s3.bucket is missing"),
    ("    bucket: reg\n", "storage.s3.region is missing"),
    ("    bucket: reg\n    region: r\n    secure: maybe\n", "storage.s3.secure is"),
])
def test_what_the_registry_refuses_is_a_clear_error(tmp_path, body, words):
    cfg = s3_config(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        storage_backend(cfg)
    assert words in str(caught.value) and caught.value.exit_code == 3


@pytest.mark.parametrize("driver", ["gcs", "azure", "swift", "oss"])
def test_other_drivers_stay_an_error_naming_them(tmp_path, driver):
    path = tmp_path / "config.yml"
    path.write_text(f"version: 0.1\nstorage:\n  {driver}: {{}}\n")
    with pytest.raises(ConfigError) as caught:
        storage_backend(load_config(path, {}))
    assert f"the {driver} driver is not supported yet" in str(caught.value)
    assert "filesystem and s3 drivers" in str(caught.value)


def test_keys_are_checked_before_they_become_object_keys():
    store = S3Store(None, "b", "/r", writable=True)
    assert store.key_of("blobs/sha256") == "r/docker/registry/v2/blobs/sha256"
    for bad in ("../x", "/blobs", "blobs//x", "blobs/./x", ""):
        with pytest.raises(Exception, match="not a plain relative path"):
            store.key_of(bad)
    with pytest.raises(Exception, match="read-only"):
        S3Store(None, "b").remove_trees(["blobs"])
