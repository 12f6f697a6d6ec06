"""ObjectStore on an S3 bucket and key prefix (AWS, MinIO, SeaweedFS, Ceph...).

Keys are checked (``keys.check_key``) before any request and stored as ``prefix + key``.
Uploads go through boto3's transfer manager (multipart above ``multipart_threshold``, at
most ``max_concurrency`` parts in flight) with server-side encryption when ``sse`` is set;
``get`` streams ``chunk_size`` pieces of the response body.
Errors become domain errors: a missing key ``NotFound``, a refusal ``Forbidden``, an
unreachable or failing service ``ServiceUnavailable``. Credentials are held only by the
boto3 client and never appear in messages or ``repr``. Over https the endpoint's
certificate is always verified: against ``verify`` (a CA bundle) when given, else against
boto3's default CAs (``AWS_CA_BUNDLE``, else its own bundle).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from spe.adapters.storage.keys import check_key, check_prefix, key_problem
from spe.domain.errors import Forbidden, InvalidRequest, NotFound, ServiceUnavailable
from spe.domain.ports import ObjectInfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1 << 20
MIN_PART = 5 * MIB
SSE_MODES = frozenset({"AES256", "aws:kms"})
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MISSING = frozenset({"NoSuchKey", "NotFound", "404"})
_DENIED = frozenset({"AccessDenied", "Forbidden", "403", "InvalidAccessKeyId",
                     "SignatureDoesNotMatch"})


class S3Store:
    """Objects under ``prefix`` in ``bucket`` (see the module docstring)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None,
                 access_key: str, secret_key: str, region: str = "us-east-1",
                 session_token: str | None = None, sse: str | None = None,
                 sse_kms_key_id: str | None = None, multipart_threshold: int = 8 * MIB,
                 max_concurrency: int = 4, chunk_size: int = MIB,
                 connect_timeout: float = 5.0, read_timeout: float = 60.0,
                 max_attempts: int = 3, verify: str | None = None) -> None:
        if not _BUCKET.fullmatch(bucket):
            raise ValueError(f"invalid S3 bucket name {bucket!r}")
        if sse is not None and sse not in SSE_MODES:
            raise ValueError(f"sse must be one of {sorted(SSE_MODES)}, not {sse!r}")
        if sse_kms_key_id and sse != "aws:kms":
            raise ValueError("sse_kms_key_id needs sse='aws:kms'")
        if chunk_size <= 0 or max_concurrency <= 0:
            raise ValueError("chunk_size and max_concurrency must be positive")
        self.bucket = bucket
        self.prefix = _normal_prefix(prefix)
        self._chunk = chunk_size
        self._sse = _sse_args(sse, sse_kms_key_id)
        self._transfer = TransferConfig(
            multipart_threshold=max(multipart_threshold, MIN_PART),
            multipart_chunksize=max(multipart_threshold, MIN_PART),
            max_concurrency=max_concurrency, preferred_transfer_client="classic")
        self._transfer.max_in_memory_upload_chunks = max_concurrency  # bounds put() memory
        self._client: S3Client = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            aws_session_token=session_token, region_name=region,
        ).client("s3", endpoint_url=endpoint_url, verify=verify, config=Config(
            signature_version="s3v4", s3={"addressing_style": "path"},
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required"))

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, {self.prefix!r})"

    @property
    def client(self) -> S3Client:
        """The boto3 client (for operators and tests: head_object, event hooks)."""
        return self._client

    # --- writes -------------------------------------------------------------------------

    def put(self, key: str, stream: BinaryIO) -> ObjectInfo:
        full = self._full(key)
        source = stream if _seekable(stream) else cast(BinaryIO, _FullReads(stream))
        with _mapped(key):
            self._client.upload_fileobj(source, self.bucket, full, ExtraArgs=self._sse,
                                        Config=self._transfer)
        return self._head(key)

    def delete(self, key: str) -> None:
        full = self._full(key)
        with _mapped(key):
            self._client.delete_object(Bucket=self.bucket, Key=full)

    # --- reads --------------------------------------------------------------------------

    def get(self, key: str) -> Iterator[bytes]:
        full = self._full(key)
        with _mapped(key):
            body = self._client.get_object(Bucket=self.bucket, Key=full)["Body"]
        return self._body_chunks(key, body)

    def get_file(self, key: str, dest: Path) -> ObjectInfo:
        info = self._head(key)
        with _mapped(key):
            self._client.download_file(self.bucket, self._full(key), str(dest),
                                       Config=self._transfer)
        return info

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            return self._head(key)
        except NotFound:
            return None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        return self._listing(prefix)

    # --- helpers ------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _head(self, key: str) -> ObjectInfo:
        full = self._full(key)
        with _mapped(key):
            head = self._client.head_object(Bucket=self.bucket, Key=full)
        return ObjectInfo(key=key, size=head["ContentLength"], modified=head["LastModified"])

    def _listing(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``. Buffered and sorted here: some S3 servers
        (SeaweedFS) list "directories" depth-first instead of in key order."""
        found: list[ObjectInfo] = []
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix)
        with _mapped(prefix or "/"):
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix):]
                    if key_problem(key) is None:  # skips folder markers ("a/")
                        found.append(ObjectInfo(key=key, size=obj["Size"],
                                                modified=obj["LastModified"]))
        found.sort(key=lambda info: info.key)
        yield from found

    def _body_chunks(self, key: str, body: Any) -> Iterator[bytes]:
        try:
            with _mapped(key):
                yield from body.iter_chunks(self._chunk)
        finally:
            body.close()


class _FullReads:
    """A non-seekable stream whose ``read(n)`` returns ``n`` bytes unless at the end: the
    transfer manager takes a short read for the last part, and S3 refuses short parts."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            return self._raw.read()
        pieces, wanted = [], n
        while wanted > 0 and (piece := self._raw.read(wanted)):
            pieces.append(piece)
            wanted -= len(piece)
        return b"".join(pieces)


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _normal_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix:
        check_prefix(prefix)
        return prefix + "/"
    return ""


def _sse_args(sse: str | None, kms_key_id: str | None) -> dict[str, str]:
    args = {"ServerSideEncryption": sse} if sse else {}
    if kms_key_id:
        args["SSEKMSKeyId"] = kms_key_id
    return args


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Turn boto3/botocore errors into domain errors."""
    try:
        yield
    except ClientError as exc:
        raise _from_client_error(exc, what) from exc
    except ParamValidationError as exc:
        raise InvalidRequest("the storage request is not valid") from exc
    except S3UploadFailedError as exc:
        context = exc.__context__
        if isinstance(context, ClientError):
            raise _from_client_error(context, what) from exc
        raise ServiceUnavailable("object storage is unavailable") from exc
    except BotoCoreError as exc:
        raise ServiceUnavailable("object storage is unavailable") from exc


def _from_client_error(exc: ClientError, what: str) -> Exception:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code == "NoSuchBucket":  # a configuration error, not a missing object
        return ServiceUnavailable("the storage bucket does not exist")
    if code in _MISSING or status == 404:
        return NotFound(f"object {what!r} does not exist")
    if code in _DENIED or status == 403:
        return Forbidden("object storage refused access", rule="storage")
    return ServiceUnavailable(f"object storage failed ({code or status})")

