"""Upload a model archive to the S3 location ``prepare_model_upload`` handed out, signed with SigV4.

The signing is botocore's (the optional ``[deploy]`` extra), the implementation Baseten's own docs use
(through boto3) and the one AWS maintains: STS session tokens, region handling, its own retries, and a
file body that is hashed and sent in chunks, so a multi-hundred-MB archive uploads in bounded memory.
(httpx-auth's AWS4Auth would fit httpx, but it signs the body from ``request.content``: the whole archive
in memory.) botocore is imported only here, only when a deploy uploads something.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.exceptions import BasetenConfigurationError, BasetenError

if TYPE_CHECKING:
    from airflow_provider_baseten.models import ModelUpload

INSTALL_HINT = "pip install 'airflow-provider-baseten[deploy]'"


def _botocore() -> Any:
    try:
        import botocore.config
        import botocore.session
    except ImportError:
        raise BasetenConfigurationError(
            "Uploading a model archive needs botocore (S3 SigV4 signing), which is not installed. "
            f"Install the deploy extra: {INSTALL_HINT}"
        ) from None
    return botocore


def check_installed() -> None:
    """Raise :class:`BasetenConfigurationError` naming the install command when botocore is missing."""
    _botocore()


def upload_archive(path: Path, upload: ModelUpload, endpoint_url: str | None = None) -> int:
    """PUT the file at ``path`` to ``upload.s3_bucket``/``upload.s3_key`` with its temporary credentials.

    :param endpoint_url: An S3-compatible endpoint instead of AWS (the connection's ``upload_endpoint_url``).
    :returns: The bytes uploaded.
    """
    botocore = _botocore()
    creds = upload.creds
    if creds is None or not upload.s3_bucket or not upload.s3_key:
        raise BasetenError("prepare_model_upload returned no credentials or S3 location to upload to.")
    config = botocore.config.Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"} if endpoint_url else {},
        # Checksums only where S3 requires them: no aws-chunked trailer a plain S3-compatible endpoint rejects.
        request_checksum_calculation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
    )
    session = botocore.session.Session()
    client = session.create_client(
        "s3",
        region_name=upload.s3_region or "us-west-2",
        endpoint_url=endpoint_url,
        aws_access_key_id=creds.aws_access_key_id,
        aws_secret_access_key=creds.aws_secret_access_key,
        aws_session_token=creds.aws_session_token,
        config=config,
    )
    size = path.stat().st_size
    try:
        with path.open("rb") as body:
            client.put_object(Bucket=upload.s3_bucket, Key=upload.s3_key, Body=body, ContentType="application/gzip")
    except Exception as exc:  # botocore's errors name the bucket and key, never the secret
        from airflow_provider_baseten.client.redact import redact

        raise BasetenError(redact(f"Uploading the model archive ({size} bytes) failed: {exc}")[:800]) from None
    finally:
        client.close()
    return size
