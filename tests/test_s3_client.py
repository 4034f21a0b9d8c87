"""workers/s3.py: every S3 client vidpipe builds follows one endpoint and retry rule (real SeaweedFS on loopback)."""

from __future__ import annotations

import pytest

from tests.services import S3Service
from workers.s3 import reset_clients, s3_client

NOTHING_LISTENS = "http://127.0.0.1:9"  # the discard port: a client sent here cannot reach a bucket


def test_the_configured_endpoint_wins_over_the_environment(
    s3_service: S3Service, s3_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", NOTHING_LISTENS)
    reset_clients()
    client = s3_client(s3_endpoint)
    client.head_bucket(Bucket=s3_bucket)
    assert client.meta.endpoint_url == s3_endpoint
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 6}  # the first try + 5


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_without_a_configured_endpoint_boto3_resolves_it_from_the_environment(
    s3_service: S3Service, s3_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, s3_endpoint)
    reset_clients()
    client = s3_client()
    client.head_bucket(Bucket=s3_bucket)
    assert client.meta.endpoint_url == s3_endpoint
    assert client is s3_client()  # one client per (endpoint, region), shared by its users
