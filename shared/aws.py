"""AWS access for renderq: one boto3 session and one S3 client per process.

Workers invoke Lambda and read Remotion's bucket; producers and the web process presign links
to private outputs (``shared.outputs``). All of them use the credentials configured for
Remotion (``REMOTION_AWS_*``, else boto3's standard chain) and the function's region.

botocore never retries here (``total_max_attempts: 1``) for Lambda: a retried ``start`` whose
first attempt reached Lambda is a second, paid render. S3 reads and writes are idempotent and
keep botocore's standard retries.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

from shared.per_process import PerProcess
from shared.settings import Settings, get_settings


def _session() -> boto3.Session:
    settings = get_settings()
    key_id, secret = settings.remotion_aws_access_key_id, settings.remotion_aws_secret_access_key
    if key_id is not None and secret is not None:
        return boto3.Session(
            aws_access_key_id=key_id.get_secret_value(),
            aws_secret_access_key=secret.get_secret_value(),
            region_name=settings.remotion_aws_region,
        )
    return boto3.Session(region_name=settings.remotion_aws_region)


_session_holder: PerProcess[boto3.Session] = PerProcess(_session)


def session() -> boto3.Session:
    return _session_holder.get()


#: boto3 sessions cannot create clients concurrently across threads.
_creating = threading.Lock()


def lambda_config(settings: Settings) -> Config:
    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=settings.lambda_connect_timeout_s,
        read_timeout=settings.lambda_read_timeout_s,
        max_pool_connections=max(10, settings.poll_concurrency * 2),
        tcp_keepalive=True,
    )


def _addressing_style() -> str:
    """Path-style requests for a custom S3 endpoint (MinIO, LocalStack, a local stand-in):
    their hostnames do not resolve ``<bucket>.<host>``. On AWS itself botocore chooses."""
    custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return "path" if custom else "auto"


#: Clients by (service, region, endpoint): one per Lambda pool (``shared.pools``).
_clients: PerProcess[dict[tuple[str, str, str | None], Any]] = PerProcess(dict)


def _client(service: str, region: str | None, endpoint_url: str | None) -> Any:
    settings = get_settings()
    key = (service, region or settings.remotion_aws_region, endpoint_url)
    clients = _clients.get()
    found = clients.get(key)
    if found is None:
        with _creating:
            found = clients.get(key)
            if found is None:
                build = _lambda_with if service == "lambda" else _s3_with
                found = clients[key] = build(settings, key[1], endpoint_url)
    return found


def _lambda_with(settings: Settings, region: str, endpoint_url: str | None) -> Any:
    return session().client(
        "lambda", region_name=region, endpoint_url=endpoint_url, config=lambda_config(settings)
    )


def lambda_client(region: str | None = None, endpoint_url: str | None = None) -> Any:
    """The process's Lambda client for a region (boto3 clients are thread-safe)."""
    return _client("lambda", region, endpoint_url)


def _s3_with(settings: Settings, region: str, endpoint_url: str | None) -> Any:
    return session().client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(
            s3={"addressing_style": "path" if endpoint_url else _addressing_style()},
            signature_version="s3v4",
            connect_timeout=settings.lambda_connect_timeout_s,
            read_timeout=settings.lambda_read_timeout_s,
            retries={"mode": "standard"},
            max_pool_connections=max(10, settings.poll_concurrency * 2),
        ),
    )


def s3_client(region: str | None = None, endpoint_url: str | None = None) -> Any:
    """The process's S3 client for a region (boto3 clients are thread-safe)."""
    return _client("s3", region, endpoint_url)
