"""An S3-compatible ``PUT /__s3/{bucket}/{key}`` for model archives (path-style, like any S3 endpoint URL).

It accepts only what Baseten's real upload accepts: a SigV4-signed PUT (``AWS4-HMAC-SHA256``) made with the
temporary credentials ``prepare_model_upload`` handed out for that very bucket and key, with their session
token, a payload hash that matches the body, and a signature that verifies (the emulator knows the secret,
so it recomputes it). The body (streamed to a temporary file, never held whole in memory) must be a tar,
gzip or plain, whose root holds a ``config.yaml`` that parses to a mapping. Errors are S3's XML errors.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tarfile
import tempfile
from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response

PREFIX = "/__s3"
#: The name a :class:`~airflow_provider_baseten.emulator.config.FaultRule` gives to fail archive uploads
#: (``FaultRule("503", endpoints=["s3_put_object"])``; only rules that name it: blanket rules leave S3 alone).
S3_ENDPOINT = "s3_put_object"
_S3_CODES = {500: "InternalError", 502: "BadGateway", 503: "SlowDown", 504: "GatewayTimeout"}
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/s3/aws4_request,\s*"
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)
_REQUIRED_SIGNED = {"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}


class S3Error(Exception):
    """An S3 error answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{self.code}</Code><Message>{self.message}</Message></Error>'
        return Response(body, status_code=self.status, media_type="application/xml")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def verify_signature(request: Request, slot: dict[str, Any], payload_hash: str) -> None:
    """Check the request is SigV4-signed with the slot's credentials; raise :class:`S3Error` if not."""
    headers = request.headers
    match = _AUTH.match(headers.get("authorization", ""))
    if match is None:
        raise S3Error(403, "AccessDenied", "Authorization is not an AWS4-HMAC-SHA256 (SigV4) signature.")
    creds = slot["creds"]
    if match["akid"] != creds["aws_access_key_id"]:
        raise S3Error(403, "InvalidAccessKeyId", "The access key was not issued for this upload.")
    signed = match["signed"].split(";")
    missing = _REQUIRED_SIGNED - set(signed)
    if missing:
        raise S3Error(403, "AccessDenied", f"SignedHeaders lacks {sorted(missing)}.")
    if headers.get("x-amz-security-token") != creds["aws_session_token"]:
        raise S3Error(403, "InvalidToken", "The session token is missing or not the one issued for this upload.")
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(match["date"]):
        raise S3Error(403, "AccessDenied", "x-amz-date does not match the credential scope's date.")
    if headers.get("x-amz-content-sha256") not in (payload_hash, "UNSIGNED-PAYLOAD"):
        raise S3Error(400, "XAmzContentSHA256Mismatch", "x-amz-content-sha256 does not match the body.")
    raw_path = request.scope.get("raw_path", b"").decode() or quote(request.url.path)
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(request.query_params.multi_items())
    )
    canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    canonical = "\n".join(
        [request.method, raw_path, query, canonical_headers, ";".join(signed), headers["x-amz-content-sha256"]]
    )
    scope = f"{match['date']}/{match['region']}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + creds["aws_secret_access_key"]).encode(), match["date"])
    for part in (match["region"], "s3", "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["sig"]):
        raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")


def read_archive(path: str) -> tuple[list[str], dict[str, Any]]:
    """(member names, parsed config.yaml) of a tar (gzip or plain); :class:`S3Error` when it is not a model."""
    import yaml

    try:
        with tarfile.open(path, "r:*") as tar:
            names = [m.name for m in tar.getmembers() if m.isfile()]
            member = next((m for m in tar.getmembers() if m.name.removeprefix("./") == "config.yaml"), None)
            if member is None:
                raise S3Error(400, "InvalidArchive", "The archive has no config.yaml at its root.")
            extracted = tar.extractfile(member)
            text = extracted.read().decode("utf-8") if extracted is not None else ""
    except tarfile.TarError as exc:
        raise S3Error(400, "InvalidArchive", f"The body is not a tar archive: {exc}") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        raise S3Error(400, "InvalidArchive", "config.yaml is not valid YAML.") from None
    if not isinstance(config, dict):
        raise S3Error(400, "InvalidArchive", "config.yaml is not a YAML mapping.")
    return names, config


def _fault(core: Any) -> Any:
    """The fault rule for this upload: only a rule that names :data:`S3_ENDPOINT` (a 5xx kind) fires."""
    if not any(S3_ENDPOINT in rule.endpoints for rule in core.faults.rules):
        return None
    rule = core.faults.pick(S3_ENDPOINT, "s3")
    if rule is not None and (not rule.kind.isdigit() or int(rule.kind) not in _S3_CODES):
        raise ValueError(f"S3 uploads take 5xx faults ({sorted(_S3_CODES)}), not {rule.kind!r}.")
    if rule is not None:
        core.state.counters["faults"][f"{S3_ENDPOINT}:{rule.kind}{'+after' if rule.after else ''}"] += 1
    return rule


def put_object(core: Any) -> Any:
    """The ``PUT /__s3/{bucket}/{key:path}`` endpoint of ``core`` (an ``EmulatorCore``; not imported: the app
    imports this module)."""

    async def handle(request: Request) -> Response:
        bucket = request.path_params["bucket"]
        key = unquote(request.path_params["key"])
        slot = core.state.upload_slot(bucket, key)
        if slot is None:
            return S3Error(403, "AccessDenied", f"No upload was prepared for s3://{bucket}/{key}.").response()
        fault = _fault(core)
        fd, path = tempfile.mkstemp(prefix="emulator-upload-", suffix=".tar")
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if fault is not None and not fault.after:  # the upload broke off: nothing is stored
                raise S3Error(int(fault.kind), _S3_CODES[int(fault.kind)], "Injected fault before storing.")
            verify_signature(request, slot, digest.hexdigest())
            names, config = read_archive(path)
            core.state.receive_upload(key, size, names, config)
            if fault is not None:  # stored, but the client is told it failed: it must PUT again, safely
                raise S3Error(int(fault.kind), _S3_CODES[int(fault.kind)], "Injected fault after storing.")
        except S3Error as exc:
            return exc.response()
        finally:
            os.unlink(path)
        return Response(status_code=200, headers={"ETag": f'"{hashlib.md5(key.encode()).hexdigest()}"'})

    return handle
