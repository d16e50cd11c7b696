"""`make publish-web`: upload the mobile web page (web/) to the stage's web bucket, after the
stack deploys (the bucket and its CloudFront distribution are in the template: infra/web.py).

    python -m infra.publish_web --stage prod                  # bucket and distribution from the stack
    python -m infra.publish_web --bucket NAME [--source web]  # or named

Every file under the source folder goes to `app/<its path>` with its Content-Type (the
distribution answers with `X-Content-Type-Options: nosniff`, so a wrong type is a page that
does not load) and a Cache-Control: `no-cache` for HTML (a page's URL never changes: browsers
revalidate it, a 304 when unchanged), a short max-age for the rest (their names carry no
content hash). The HTML goes last, so a new page never refers to a file not yet uploaded;
files under `app/` that the folder no longer has are deleted (the bucket keeps their earlier
versions 30 days). Then the distribution's cache of `/app/*` is invalidated, when its id is
known. Runs with the operator's credentials (no function touches the bucket).
"""
from __future__ import annotations

import argparse
import mimetypes
import os
import sys
import time
from pathlib import Path
from typing import Any

from infra.stage import ROOT
from infra.web import KEY_PREFIX, OUTPUT_BUCKET, OUTPUT_DISTRIBUTION

SOURCE = ROOT / "web"
HTML_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=300"
# Types by suffix first: the platform's mime.types differs from machine to machine.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".map": "application/json",
    ".webmanifest": "application/manifest+json", ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
    ".gif": "image/gif", ".webp": "image/webp", ".ico": "image/x-icon",
    ".woff": "font/woff", ".woff2": "font/woff2",
}


def content_type(path: Path) -> str:
    known = CONTENT_TYPES.get(path.suffix.lower())
    return known or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def cache_control(path: Path) -> str:
    return HTML_CACHE if path.suffix.lower() == ".html" else ASSET_CACHE


def files(source: Path) -> list[tuple[Path, str]]:
    """(file, key) for every regular file under `source`, HTML last. Hidden files and folders
    (.DS_Store, .git) are left out, and so is anything a link would fetch from outside."""
    root = source.resolve()
    found = []
    for folder, subfolders, names in os.walk(root):  # links to folders are not followed
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            if name.startswith(".") or not path.is_file() or not path.resolve().is_relative_to(root):
                continue
            found.append((path, KEY_PREFIX + path.relative_to(root).as_posix()))
    return sorted(found, key=lambda entry: (entry[0].suffix.lower() == ".html", entry[1]))


def publish(source: Path, bucket: str, s3: Any) -> list[str]:
    """Upload `source` to `bucket` under app/ and delete what it no longer has; the keys
    uploaded, in order."""
    entries = files(source)
    if not any(key == KEY_PREFIX + "index.html" for _, key in entries):
        raise SystemExit(f"FAIL: no index.html in {source}: nothing would answer /app/")
    for path, key in entries:
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(),
                      ContentType=content_type(path), CacheControl=cache_control(path))
    keep = {key for _, key in entries}
    stale = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=KEY_PREFIX)
             for obj in page.get("Contents", []) if obj["Key"] not in keep]
    for start in range(0, len(stale), 1000):  # DeleteObjects takes 1,000 keys at most
        s3.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": key} for key in stale[start:start + 1000]], "Quiet": True})
    return [key for _, key in entries]


def invalidate(distribution_id: str, cloudfront: Any) -> str:
    """Drop the edges' copies of the page, so visitors get it now rather than within the
    cache's max-age; the invalidation's id."""
    answer = cloudfront.create_invalidation(DistributionId=distribution_id, InvalidationBatch={
        "Paths": {"Quantity": 1, "Items": ["/" + KEY_PREFIX + "*"]},
        "CallerReference": f"publish-web-{time.time_ns()}"})
    return answer["Invalidation"]["Id"]


def stack_outputs(stack_name: str, cloudformation: Any) -> dict[str, str]:
    [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.publish_web")
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--stack-name", help="default: lending-<stage>, as README's deploy command names it")
    parser.add_argument("--bucket", help="the web bucket (default: the stack's WebBucketName output)")
    parser.add_argument("--distribution-id", help="default: the stack's WebDistributionId output")
    parser.add_argument("--source", type=Path, default=SOURCE, help="default: web/")
    args = parser.parse_args(argv)
    import boto3

    bucket, distribution = args.bucket, args.distribution_id
    if not bucket:  # a named bucket: the distribution only if named too
        outputs = stack_outputs(args.stack_name or f"lending-{args.stage}", boto3.client("cloudformation"))
        bucket, distribution = outputs[OUTPUT_BUCKET], distribution or outputs.get(OUTPUT_DISTRIBUTION)
    keys = publish(args.source, bucket, boto3.client("s3"))
    print(f"publish-web: {len(keys)} files from {args.source} to s3://{bucket}/{KEY_PREFIX}")
    if distribution:
        print(f"publish-web: invalidation {invalidate(distribution, boto3.client('cloudfront'))} "
              f"of /{KEY_PREFIX}* on {distribution}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
