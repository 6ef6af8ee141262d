"""A real S3 store for tests: a single-node Ceph (monitor, in-memory OSD, radosgw) on 127.0.0.1.

``scripts/ceph-s3.sh`` starts it in about a second with its state in a directory of ours and
writes the endpoint and keys to ``<dir>/env``; :class:`Ceph` reads them, makes buckets, pushes
the fixture scenarios into a bucket through the real registry's s3 driver, and writes the
registry configs regstore and the registry's own GC read. The cluster is stopped by the PIDs of
the daemons the script started (SIGKILL: radosgw can hang on SIGTERM, nothing needs keeping).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.registry import RealRegistry, write_config

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "ceph-s3.sh"
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
#: what Debian's docker-registry 2.8.2 with the s3 driver must not see (it panics at start)
REGISTRY_ENV_WITHOUT = ("AWS_CA_BUNDLE",)


def ceph_available() -> bool:
    """Whether the Ceph binaries the script needs are installed."""
    return all(shutil.which(b) for b in BINARIES)


class Ceph:
    """A running cluster started by :meth:`start`; :meth:`stop` ends it."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.endpoint = ""
        self.access_key = ""
        self.secret_key = ""

    def start(self) -> "Ceph":
        for attempt in range(3):
            proc = subprocess.run(["bash", str(SCRIPT), "start", str(self.directory)],
                                  capture_output=True, text=True, timeout=180)
            if proc.returncode == 0:
                break
            if attempt == 2:
                raise RuntimeError(f"{SCRIPT.name} start failed:\n{proc.stdout}\n{proc.stderr}")
        env = dict(line.split("=", 1) for line in
                   (self.directory / "env").read_text().split())
        self.endpoint = env["S3_ENDPOINT"]
        self.access_key = env["S3_ACCESS_KEY"]
        self.secret_key = env["S3_SECRET_KEY"]
        return self

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.directory)],
                       capture_output=True, timeout=60, check=False)

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))

    def new_bucket(self, prefix: str = "t") -> str:
        """A fresh, empty bucket."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def s3_params(self, bucket: str, rootdirectory: str = "/store") -> dict[str, Any]:
        """The registry's ``storage.s3`` section for ``bucket``."""
        return {"accesskey": self.access_key, "secretkey": self.secret_key,
                "region": "us-east-1", "regionendpoint": self.endpoint, "bucket": bucket,
                "rootdirectory": rootdirectory, "secure": False, "v4auth": True}

    def config(self, path: Path, bucket: str, rootdirectory: str = "/store", *,
               readonly: bool = False, extra: dict[str, Any] | None = None) -> Path:
        """A registry config.yml for the store in ``bucket`` (read by regstore, by the
        registry's garbage-collect and by ``docker-registry serve``)."""
        return write_config(path, None, readonly=readonly, extra=extra,
                            s3=self.s3_params(bucket, rootdirectory))

    def registry(self, bucket: str, rootdirectory: str = "/store", *, workdir: Path,
                 readonly: bool = False, extra: dict[str, Any] | None = None) -> RealRegistry:
        """The real registry serving the store in ``bucket`` (a context manager)."""
        return RealRegistry(None, s3=self.s3_params(bucket, rootdirectory), readonly=readonly,
                            workdir=workdir, extra_config=extra,
                            environ_without=REGISTRY_ENV_WITHOUT)

    def keys(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix`` with its content: a store's whole state, to compare."""
        client = self.client()
        names = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]
        with ThreadPoolExecutor(max_workers=16) as pool:
            bodies = pool.map(lambda k: client.get_object(Bucket=bucket, Key=k)["Body"].read(),
                              names)
            return dict(zip(names, bodies))

    def copy_store(self, bucket: str, rootdirectory: str = "/store",
                   prefix: str = "c") -> str:
        """A new bucket holding a byte-for-byte copy of the store under ``rootdirectory`` of
        ``bucket`` (server-side copies, so every object is new: LastModified is now). An
        upload's data, an unfinished multipart upload, is not an object and is not copied."""
        client = self.client()
        target = self.new_bucket(prefix)
        names = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=rootdirectory.strip("/") + "/") for o in page.get("Contents", [])]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda k: client.copy_object(
                Bucket=target, Key=k, CopySource={"Bucket": bucket, "Key": k}), names))
        return target

    def push_scenario(self, name: str, bucket: str, rootdirectory: str = "/store", *,
                      workdir: Path) -> dict[str, Any]:
        """Push the fixture scenario ``name`` (fixtures/build.py) into ``bucket`` through the
        real registry, and return its record."""
        sys.path.insert(0, str(ROOT))
        from fixtures.build import STORES, push_scenario

        description, fill, options = STORES[name]
        assert not options.get("schema1"), "schema1 scenarios need a scratch registry"
        with self.registry(bucket, rootdirectory, workdir=workdir,
                           extra=options.get("extra_config")) as registry:
            return push_scenario(registry.client, name, description, fill, **options)
