"""Opens the right ObjectStore for a location: an absolute path (the shared filesystem)
or ``s3://bucket/prefix`` (MinIO or any S3 service, with the service's credentials)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spe.adapters.storage.filesystem import FilesystemStore
from spe.domain.errors import ServiceUnavailable
from spe.domain.ports import ObjectStore


@dataclass
class S3Settings:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    sse: str = ""
    sse_kms_key_id: str = ""
    ca_file: str = ""  # CA bundle the https endpoint's certificate must chain to


@dataclass
class StoreFactory:
    """``factory(location)``: one cached store per location."""

    s3: S3Settings | None = None
    # more schemes (``<scheme>://...``): openers registered as ``spe.stores`` entry points
    plugins: dict[str, Callable[[str], ObjectStore]] = field(default_factory=dict)
    _cache: dict[str, ObjectStore] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, location: str) -> ObjectStore:
        with self._lock:
            if location not in self._cache:
                self._cache[location] = self._open(location)
            return self._cache[location]

    def _open(self, location: str) -> ObjectStore:
        scheme, sep, _ = location.partition("://")
        if sep and scheme in self.plugins:
            return self.plugins[scheme](location)
        if location.startswith("s3://"):
            if self.s3 is None:
                raise ServiceUnavailable(f"{location}: no S3 endpoint and credentials are "
                                         "configured")
            bucket, _, prefix = location[len("s3://"):].partition("/")
            # imported here: boto3 costs ~40 MiB of RSS, and a site without S3 never needs it
            from spe.adapters.storage.s3 import S3Store  # noqa: PLC0415
            return S3Store(bucket, prefix, endpoint_url=self.s3.endpoint_url or None,
                           access_key=self.s3.access_key, secret_key=self.s3.secret_key,
                           region=self.s3.region, sse=self.s3.sse or None,
                           sse_kms_key_id=self.s3.sse_kms_key_id or None,
                           verify=self.s3.ca_file or None)
        path = Path(location)
        if not path.is_absolute():
            raise ServiceUnavailable(f"{location}: a storage location is an absolute path "
                                     "or s3://")
        try:
            return FilesystemStore(path)
        except ValueError as exc:  # e.g. a dataset directory that does not exist
            raise ServiceUnavailable(f"{location}: {exc}") from exc
