"""The production path of first-party segment files: S3 with a presigned URL (moto, in-process)."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from moto import mock_aws

from reverse_etl.insider.segments.upload import presigned_s3_url


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # Fake credentials: moto intercepts every call in-process, nothing leaves the machine.
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="segments")
        yield client


def test_presigned_url_points_at_the_uploaded_csv(s3) -> None:  # type: ignore[no-untyped-def]
    body = b"a@example.com\nb@example.com\n"
    url = presigned_s3_url("segments", "vip/run-1/vip_customers.csv", body, expires_seconds=43_200)
    parsed = urlparse(url)
    assert ".csv" in parsed.path and "segments" in (parsed.netloc + parsed.path)
    query = parse_qs(parsed.query)
    # Insider may fetch it for 12 hours (SigV4 says so in seconds, SigV2 as an epoch).
    if "X-Amz-Expires" in query:
        assert query["X-Amz-Expires"] == ["43200"]
    else:
        assert abs(int(query["Expires"][0]) - time.time() - 43_200) < 60
    stored = s3.get_object(Bucket="segments", Key="vip/run-1/vip_customers.csv")
    assert stored["Body"].read() == body and stored["ContentType"] == "text/csv"
