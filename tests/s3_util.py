"""Looking into an S3 bucket from tests: boto3 clients on an ``S3Proxy``, SSE-C keys, and
``BucketMirror``, a local picture of a bucket prefix for tests written against a data dir
(quiver_util.manifest_path, manifest_versions, ``server.data_dir / ...``, os.walk).

Listings leave out Arrow's empty directory markers (keys ending in "/": they hold nothing).
Sizes come from listings (no HEAD: a HEAD without the SSE-C headers is refused for an SSE-C
object).
"""

import os
import secrets
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions

SSE = "AES256"


def boto3_client(proxy):
    """A boto3 S3 client on `proxy` (path-style, trusting its self-signed certificate)."""
    return boto3.client(
        "s3", endpoint_url=proxy.url, verify=str(proxy.ca_file), region_name=proxy.region,
        aws_access_key_id=proxy.access_key, aws_secret_access_key=proxy.secret_key,
        config=botocore.config.Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 2}))


def new_sse_key():
    """32 random bytes: an SSE-C key."""
    return secrets.token_bytes(32)


def sse_args(key):
    return {"SSECustomerAlgorithm": SSE, "SSECustomerKey": key} if key else {}


def write_key_file(path, key, mode=0o600):
    """A key file as Quiver reads them (64 hex digits), owner-only."""
    path.write_text(key.hex() + "\n")
    os.chmod(path, mode)
    return path


def list_objects(client, bucket, prefix=""):
    """{key: size} of every object under `prefix` (directory markers "…/" left out)."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                found[obj["Key"]] = obj["Size"]
    return found


def get_object(client, bucket, key, sse_key=None):
    """The object's bytes, read with `sse_key` (None: without SSE-C headers). Raises
    botocore's ClientError when the server refuses."""
    return client.get_object(Bucket=bucket, Key=key, **sse_args(sse_key))["Body"].read()


def refused(client, bucket, key, sse_key=None):
    """The server's error code when reading `key` with `sse_key`, or None if it answered."""
    try:
        get_object(client, bucket, key, sse_key)
    except botocore.exceptions.ClientError as e:
        return e.response.get("Error", {}).get("Code") or str(e)
    return None


def multipart_uploads(client, bucket):
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def remove_bucket(client, bucket):
    """Delete every object and incomplete upload of `bucket`, then the bucket: an in-memory
    s3proxy keeps all it holds in its heap."""
    try:
        for upload in multipart_uploads(client, bucket):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError:
        pass


class BucketMirror:
    """A local picture of what a bucket prefix holds, for tests written against a data dir.

    ``sync()`` lists the prefix and makes `local_dir` match it: manifests (*.json) are
    downloaded (with the SSE-C keys; they are immutable, so once), every other object is a
    sparse file of the object's size (its bytes are not fetched), and files of objects that
    are gone are removed (with the directories they emptied). It returns `local_dir`, so that
    ``Path(...)``, ``rglob``, ``stat().st_size``, ``read_text`` and ``os.walk`` see the bucket.
    Writes to the mirror do not reach the bucket.
    """

    def __init__(self, client, bucket, prefix, local_dir, sse_keys=()):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.local_dir = Path(local_dir)
        self.sse_keys = [k for k in sse_keys if k]
        self.local_dir.mkdir(parents=True, exist_ok=True)

    def read(self, key):
        """An object's bytes, read with each SSE-C key in turn, then without one."""
        last = None
        for sse_key in [*self.sse_keys, None]:
            try:
                return get_object(self.client, self.bucket, key, sse_key)
            except botocore.exceptions.ClientError as e:
                last = e
        raise last

    def sync(self):
        objects = list_objects(self.client, self.bucket, self.prefix + "/")
        wanted = set()
        for key, size in objects.items():
            rel = key[len(self.prefix) + 1:]
            path = self.local_dir / rel
            wanted.add(path)
            if path.is_file() and path.stat().st_size == size:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if key.endswith(".json"):
                try:
                    path.write_bytes(self.read(key))
                except botocore.exceptions.ClientError:
                    wanted.discard(path)  # deleted since the listing
            else:
                with open(path, "wb") as f:
                    f.truncate(size)
        for path in sorted(self.local_dir.rglob("*"), reverse=True):
            if path.is_file() and path not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return self.local_dir
