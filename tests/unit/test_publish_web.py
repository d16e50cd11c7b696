"""`make publish-web` uploads the page's folder, and only it, under app/ with the types and
cache lifetimes the distribution and browsers rely on (on moto)."""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from infra import publish_web

BUCKET = "lending-prod-web-test"


@pytest.fixture()
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture()
def site(tmp_path):
    """A page folder (the real web/ may not exist yet), with a file beside it that must stay
    where it is, a link out of the folder, and hidden files."""
    source = tmp_path / "web"
    (source / "img").mkdir(parents=True)
    (source / "index.html").write_text("<!doctype html><title>借款</title><script src=app.js></script>")
    (source / "app.js").write_text("fetch('/v1/products');\n")
    (source / "app.css").write_text("body { margin: 0 }\n")
    (source / "img" / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (source / "manifest.webmanifest").write_text("{}")
    (source / ".DS_Store").write_bytes(b"\0")
    (source / ".git").mkdir()
    (source / ".git" / "config").write_text("[core]")
    (tmp_path / "secret.env").write_text("TOKEN=x")
    (source / "linked.env").symlink_to(tmp_path / "secret.env")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "other.js").write_text("x")
    (source / "outside").symlink_to(tmp_path / "outside", target_is_directory=True)
    return source


def _objects(s3):
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {key: s3.get_object(Bucket=BUCKET, Key=key) for key in keys}


def test_every_file_of_the_folder_goes_under_app_with_its_type_and_cache_lifetime(s3, site):
    uploaded = publish_web.publish(site, BUCKET, s3)
    objects = _objects(s3)
    assert set(objects) == {"app/index.html", "app/app.js", "app/app.css", "app/img/logo.svg",
                            "app/manifest.webmanifest"}
    assert uploaded[-1] == "app/index.html"  # the page last: it never names a file not there yet
    types = {key: obj["ContentType"] for key, obj in objects.items()}
    assert types == {"app/index.html": "text/html; charset=utf-8",
                     "app/app.js": "text/javascript; charset=utf-8",
                     "app/app.css": "text/css; charset=utf-8", "app/img/logo.svg": "image/svg+xml",
                     "app/manifest.webmanifest": "application/manifest+json"}
    assert objects["app/index.html"]["CacheControl"] == "no-cache"
    for key in set(objects) - {"app/index.html"}:
        assert objects[key]["CacheControl"] == "public, max-age=300", key
    assert objects["app/index.html"]["Body"].read() == (site / "index.html").read_bytes()


def test_files_the_folder_no_longer_has_are_removed_and_nothing_else_is_touched(s3, site):
    s3.put_object(Bucket=BUCKET, Key="app/old.js", Body=b"old")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/keep.txt", Body=b"keep")  # outside app/: not ours
    publish_web.publish(site, BUCKET, s3)
    keys = set(_objects(s3))
    assert "app/old.js" not in keys and "elsewhere/keep.txt" in keys


def test_a_folder_without_index_html_is_refused_before_anything_is_uploaded(s3, tmp_path):
    (tmp_path / "app.js").write_text("x")
    with pytest.raises(SystemExit, match="no index.html"):
        publish_web.publish(tmp_path, BUCKET, s3)
    assert _objects(s3) == {}


def test_the_bucket_and_distribution_come_from_the_stacks_outputs(s3, site, monkeypatch, capsys):
    template = {"Resources": {"WebBucket": {"Type": "AWS::S3::Bucket"}},
                "Outputs": {"WebBucketName": {"Value": {"Ref": "WebBucket"}},
                            "WebDistributionId": {"Value": "E2EXAMPLE"}}}
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(StackName="lending-prod", TemplateBody=json.dumps(template))
    outputs = publish_web.stack_outputs("lending-prod", cloudformation)
    assert outputs["WebDistributionId"] == "E2EXAMPLE"
    invalidated = []
    monkeypatch.setattr(publish_web, "invalidate", lambda distribution, _: invalidated.append(distribution) or "I1")
    assert publish_web.main(["--stage", "prod", "--source", str(site)]) == 0
    bucket = outputs["WebBucketName"]
    assert {obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket)["Contents"]} >= {"app/index.html"}
    assert invalidated == ["E2EXAMPLE"]
    assert f"to s3://{bucket}/app/" in capsys.readouterr().out


def test_the_invalidation_covers_the_page():
    calls = []

    class CloudFront:
        def create_invalidation(self, **kwargs):
            calls.append(kwargs)
            return {"Invalidation": {"Id": "I2"}}

    assert publish_web.invalidate("E2EXAMPLE", CloudFront()) == "I2"
    [call] = calls
    assert call["DistributionId"] == "E2EXAMPLE"
    assert call["InvalidationBatch"]["Paths"] == {"Quantity": 1, "Items": ["/app/*"]}
