"""Where photo files live: a directory (the default) or an S3-compatible bucket (MinIO, AWS S3, …).

The database keeps each file's key and SHA-256; the storage keeps the bytes. Every read is checked against
the SHA-256, so a damaged or swapped file is never served as evidence. Keys start with the day they were
written (`2026/11/30/…`), so the sweep of files no database row names only lists recent days.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from gridmap.errors import ConfigError, GridmapError

_KEY = re.compile(r"^[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9a-f]{32}/(original|display|thumb)$")
_PARTIAL = ".partial"


class StorageError(GridmapError):
    """The photo storage failed or holds a damaged file (HTTP 500; the details go to the log)."""

    status = 500


class Storage(Protocol):
    """A place for photo files, addressed by key."""

    def put(self, key: str, data: bytes, *, content_type: str, sha256: str) -> None:
        """Store the bytes under the key (whole or not at all)."""

    def get(self, key: str) -> bytes:
        """Return the bytes stored under the key."""

    def delete(self, key: str) -> None:
        """Remove the key; a missing key is not an error."""

    def keys(self, prefix: str) -> Iterator[tuple[str, dt.datetime]]:
        """Yield (key, time written in UTC) of every file under the prefix."""

    def describe(self) -> str:
        """Say where the files are, without secrets."""


def new_base(now: dt.datetime) -> str:
    """Return a fresh key base `YYYY/MM/DD/<32 hex>` for one photo's files."""
    return f"{now:%Y/%m/%d}/{uuid.uuid4().hex}"


def check_key(key: str) -> str:
    """Return the key if it is one gridmap makes; anything else (a path escaping the root) is refused."""
    if not _KEY.match(key):
        raise StorageError(f"not a photo key: {key!r}")
    return key


class DirectoryStorage:
    """Files in a directory tree: written to a partial file, flushed to disk, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        """Say which directory."""
        return f"directory {self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, *, content_type: str, sha256: str) -> None:
        """Write the file so that it is either absent or complete, even if the process is killed."""
        target = self._path(key)
        partial = self.root / _PARTIAL / f"{uuid.uuid4().hex}.tmp"
        try:
            partial.parent.mkdir(parents=True, exist_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())  # on disk before the database row that names it is committed
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StorageError(f"cannot write photos into {self.root}: {exc.strerror or exc}") from exc

    def get(self, key: str) -> bytes:
        """Read a file."""
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise StorageError(f"photo file {key} cannot be read from {self.root}: {exc.strerror or exc}") from exc

    def delete(self, key: str) -> None:
        """Remove a file and the folders it leaves empty."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        for folder in list(path.parents)[: len(Path(key).parents) - 1]:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (or already gone): stop climbing

    def keys(self, prefix: str) -> Iterator[tuple[str, dt.datetime]]:
        """Yield every file under the prefix with its modification time; partial files count under ''."""
        start = self.root / prefix if prefix else self.root
        if not start.is_dir():
            return
        for folder, dirs, files in os.walk(start):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder) / name
                try:
                    stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
                except FileNotFoundError:
                    continue
                yield path.relative_to(self.root).as_posix(), stamp

    def delete_partial(self, key: str) -> None:
        """Remove a partial file left by a killed writer."""
        if re.fullmatch(rf"{re.escape(_PARTIAL)}/[0-9a-f]{{32}}\.tmp", key):
            (self.root / key).unlink(missing_ok=True)


class S3Storage:
    """Objects in an S3-compatible bucket, under an optional prefix. Credentials come from the usual AWS
    variables or files (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ~/.aws), never from gridmap's settings."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url or None
        self.region = region or None
        self._client = None

    def describe(self) -> str:
        """Say which bucket (and endpoint)."""
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"bucket s3://{self.bucket}/{self.prefix}{where}"

    @property
    def client(self):
        """The boto3 client, made on first use (boto3 takes ~0.3 s to import)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region or "us-east-1", config=config
            )
        return self._client

    def _fail(self, doing: str, exc: Exception) -> StorageError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket", "InvalidBucketName"):
                return ConfigError(f"the photo bucket {self.describe()} does not exist; create it first")
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return ConfigError(f"the photo bucket {self.describe()} refused the credentials ({code})")
            return StorageError(f"{doing} in {self.describe()} failed: {code or 'error'}")
        return StorageError(f"{doing} in {self.describe()} failed: {type(exc).__name__}")

    def put(self, key: str, data: bytes, *, content_type: str, sha256: str) -> None:
        """Upload one object; the service checks it against the SHA-256 sent with it."""
        from botocore.exceptions import BotoCoreError, ClientError

        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + check_key(key),
                Body=data,
                ContentType=content_type,
                ChecksumSHA256=checksum,
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"storing photo {key}", exc) from exc

    def get(self, key: str) -> bytes:
        """Download one object."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
            return answer["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"reading photo {key}", exc) from exc

    def delete(self, key: str) -> None:
        """Delete one object (S3 answers success for a missing key too)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"deleting photo {key}", exc) from exc

    def keys(self, prefix: str) -> Iterator[tuple[str, dt.datetime]]:
        """List the objects under the prefix, page by page."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :], item["LastModified"]
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("listing photos", exc) from exc


def open_storage(location: str, *, endpoint_url: str = "", region: str = "") -> DirectoryStorage | S3Storage:
    """Return the storage a location names: `s3://BUCKET[/PREFIX]` or a directory path."""
    location = (location or "").strip()
    if not location:
        raise ConfigError("GRIDMAP_ATTACHMENTS is empty: give a directory or s3://BUCKET[/PREFIX]")
    if location.lower().startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise ConfigError(f"{location!r} does not name a bucket: use s3://BUCKET[/PREFIX]")
        return S3Storage(bucket, prefix, endpoint_url=endpoint_url, region=region)
    if "://" in location:
        raise ConfigError(f"photo storage {location!r}: use a directory or s3://BUCKET[/PREFIX]")
    return DirectoryStorage(Path(location).expanduser())
