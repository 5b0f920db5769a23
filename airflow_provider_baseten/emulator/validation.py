"""Strict request validation: the emulator rejects what Baseten's official OpenAPI specs reject.

The specs ship inside the package (``emulator/specs/openapi-{management,inference}.json``; the tests read
the same files through ``tests/specs``). For each endpoint of ``_routes.ENDPOINTS`` the operation with the
same method and path shape is compiled once, on first use, into an :class:`OperationRules`: its path and
query parameters, whether it has a request body, in which media types, and a ``jsonschema`` validator for
the JSON body (``$ref``s resolved inside the spec document). Checking a request is then a few dict look-ups;
schemas that accept any JSON object (the model's predict input) are checked with ``isinstance`` alone, so
the predict hot path stays cheap.

Answers follow Stoplight Prism (a mock server that enforces the same specs) and Baseten's own API: a body
(or media type) the operation does not take is ``415``; a body that is not JSON is ``400``; a missing
required body, a body that breaks its schema or a bad path or query parameter is ``422``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from airflow_provider_baseten.client.routes import ENDPOINTS, Endpoint
from airflow_provider_baseten.emulator.state import ApiError

_PARAM = re.compile(r"\{[^}]+\}")
_FREE_FORM_KEYS = {"type", "description", "title"}  # a schema with only these (type object) takes any object
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")

# jsonschema checks "uri" only with an optional package installed; Prism always checks it (webhook_endpoint).
FORMATS = FormatChecker()


@FORMATS.checks("uri", raises=ValueError)
def is_uri(value: object) -> bool:
    """An absolute URI (RFC 3986): a scheme, no spaces or control characters, a host for http(s)."""
    if not isinstance(value, str):
        return True
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return False
    parts = urlsplit(value)
    if not _SCHEME.fullmatch(parts.scheme or ""):
        return False
    return bool(parts.hostname) if parts.scheme.lower() in ("http", "https") else bool(value[len(parts.scheme) + 1 :])


@cache
def load_spec(surface: str) -> dict[str, Any]:
    """Baseten's OpenAPI document for ``surface`` (``management`` or ``inference``), from the package."""
    text = resources.files("airflow_provider_baseten.emulator") / "specs" / f"openapi-{surface}.json"
    spec: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return spec


@cache
def _registry(surface: str) -> Registry[Any]:
    resource = Resource.from_contents(load_spec(surface), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(_urn(surface), resource)
    return registry


def _urn(surface: str) -> str:
    return f"urn:baseten:{surface}"


def _resolve(surface: str, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with a local ``$ref`` (``#/components/...``) followed."""
    spec = load_spec(surface)
    while "$ref" in obj:
        node: Any = spec
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def spec_surface(ep: Endpoint) -> str | None:
    """Which spec describes ``ep``: chains are in the inference spec; Model APIs are in none."""
    return {"chain": "inference", "model_apis": None}.get(ep.surface, ep.surface)


def find_operation(ep: Endpoint) -> tuple[str, dict[str, Any]] | None:
    """(spec path, operation) with ``ep``'s method and path shape (parameter names may differ), or ``None``."""
    shape = _PARAM.sub("{}", ep.path)
    surface = spec_surface(ep)
    if surface is None:
        return None
    for path, ops in load_spec(surface)["paths"].items():
        op = ops.get(ep.method.lower())
        if op is not None and _PARAM.sub("{}", path) == shape:
            return path, op
    return None


_SPEC_METHODS = ("get", "post", "put", "patch", "delete")


def spec_operations() -> list[str]:
    """Every operation of both official specs, as ``"METHOD /path"`` (the spec's own path template)."""
    return [
        f"{method.upper()} {path}"
        for surface in ("management", "inference")
        for path, ops in load_spec(surface)["paths"].items()
        for method in ops
        if method in _SPEC_METHODS
    ]


def covered_operations() -> dict[str, str]:
    """``"METHOD /path"`` of each spec operation a row of the route table covers -> that row's name."""
    covered: dict[str, str] = {}
    for ep in ENDPOINTS:
        found = find_operation(ep)
        if found is not None:
            covered.setdefault(f"{ep.method} {found[0]}", ep.name)
    return covered


def _validator(surface: str, schema: dict[str, Any]) -> Callable[[Any], list[str]]:
    """A function listing the schema's complaints about a value (empty: valid)."""
    if set(schema) <= _FREE_FORM_KEYS and schema.get("type") == "object":
        return lambda value: [] if isinstance(value, dict) else ["must be a JSON object"]
    if set(schema) <= _FREE_FORM_KEYS and schema.get("type") == "string":
        return lambda value: [] if isinstance(value, str) else ["must be a string"]
    validator = Draft202012Validator(_anchor(surface, schema), registry=_registry(surface), format_checker=FORMATS)

    def errors(value: Any) -> list[str]:
        found = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        return [_describe(e.absolute_path, e.message) for e in found[:3]]

    return errors


def _anchor(surface: str, node: Any) -> Any:
    """An operation's inline schema with its local refs (``#/components/...``) pointed at the spec document."""
    if isinstance(node, dict):
        return {
            k: _urn(surface) + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else _anchor(surface, v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_anchor(surface, v) for v in node]
    return node


def _describe(path: Any, message: str) -> str:
    where = ".".join(str(p) for p in path)
    if len(message) > 200:
        message = message[:200] + "..."
    return f"{where}: {message}" if where else message


def _coerce(raw: str) -> list[Any]:
    """Candidate JSON values of a path or query string: itself, then its JSON reading (``5``, ``true``)."""
    out: list[Any] = [raw]
    try:
        parsed = json.loads(raw)
    except ValueError:
        return out
    if not isinstance(parsed, str):
        out.append(parsed)
    return out


@dataclass
class _Param:
    name: str
    required: bool
    check: Callable[[Any], list[str]]
    array: bool

    def errors(self, values: list[str]) -> list[str]:
        if self.array:
            items = [v for raw in values for v in _coerce(raw)[-1:]]
            return self.check(items)
        if len(values) > 1:
            return [f"{self.name}: given {len(values)} times"]
        for candidate in _coerce(values[0]):
            if not self.check(candidate):
                return []
        return [f"{self.name}: " + "; ".join(self.check(values[0]))]


def _allows_array(schema: dict[str, Any]) -> bool:
    if schema.get("type") == "array":
        return True
    return any(_allows_array(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


@dataclass
class OperationRules:
    """What one spec operation accepts."""

    endpoint: str
    spec_path: str
    path_params: dict[str, _Param] = field(default_factory=dict)
    query: dict[str, _Param] = field(default_factory=dict)
    body_required: bool = False
    media_types: dict[str, Callable[[Any], list[str]] | None] | None = None  # None: no request body at all

    def check(
        self, params: Mapping[str, str], query: Mapping[str, list[str]], content_type: str | None, raw: bytes
    ) -> Any:
        """Validate one request; return its parsed JSON body (``None`` without one) or raise :class:`ApiError`."""
        for name, value in params.items():
            rule = self.path_params.get(name)
            if rule is not None and (problems := rule.errors([value])):
                raise ApiError(422, "Invalid path parameter " + problems[0], "client_error")
        for name, rule in self.query.items():
            values = query.get(name)
            if not values:
                if rule.required:
                    raise ApiError(422, f"Missing required query parameter {name}.", "client_error")
                continue
            if problems := rule.errors(values):
                raise ApiError(422, "Invalid query parameter " + problems[0], "client_error")
        return self.check_body(content_type, raw)

    def check_body(self, content_type: str | None, raw: bytes) -> Any:
        """Validate the body against the operation's ``requestBody``; return it parsed (JSON) or raw."""
        if not raw:
            if self.body_required:
                raise ApiError(422, f"{self.endpoint} requires a request body.", "client_error")
            return None
        if self.media_types is None:
            raise ApiError(415, f"{self.endpoint} takes no request body.", "client_error")
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media not in self.media_types:
            accepted = ", ".join(sorted(self.media_types))
            raise ApiError(
                415,
                f"Unsupported Content-Type {media or '(none)'!r} for {self.endpoint}; use {accepted}.",
                "client_error",
            )
        check = self.media_types[media]
        if media == "multipart/form-data":
            _check_multipart(self.endpoint, content_type or "", raw)
        if check is None:  # a non-JSON media type (binary or multipart model input): taken as it is
            return raw
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "The request body is not valid JSON.", "client_error") from None
        if problems := check(body):
            raise ApiError(422, f"Invalid request body for {self.endpoint}: " + "; ".join(problems), "client_error")
        return body


def _check_multipart(endpoint: str, content_type: str, raw: bytes) -> None:
    """A well-formed multipart body: a boundary, at least one part, each with a form-data field name."""
    boundary = ""
    for item in content_type.split(";")[1:]:
        key, _, value = item.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise ApiError(400, f"multipart/form-data without a boundary for {endpoint}.", "client_error")
    # Between the first delimiter and the closing one (``--boundary--``) each part is headers, a blank line,
    # then its content, and names its field in Content-Disposition.
    chunks = raw.split(b"--" + boundary.encode())
    parts = chunks[1:-1] if len(chunks) > 2 and chunks[-1].startswith(b"--") else []
    problem = "" if parts else "a multipart body needs at least one part"
    for part in parts:
        head, sep, _ = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        lines = [line.lower() for line in head.split(b"\r\n")]
        if not sep or not any(x.startswith(b"content-disposition: form-data") and b"name=" in x for x in lines):
            problem = "each multipart part needs Content-Disposition: form-data with a name"
    if problem:
        raise ApiError(422, f"Invalid request body for {endpoint}: {problem}.", "client_error")


def _compile(ep: Endpoint) -> OperationRules:
    found = find_operation(ep)
    if found is None:
        raise LookupError(f"{ep.name}: {ep.method} {ep.path} is in no operation of Baseten's {ep.surface} spec")
    spec_path, op = found
    surface = spec_surface(ep) or ep.surface
    rules = OperationRules(ep.name, spec_path)
    path_item = load_spec(surface)["paths"][spec_path]
    spec_names = _PARAM.findall(spec_path)
    ours = dict(zip((n.strip("{}") for n in spec_names), ep.params, strict=True))  # spec name -> route-table name
    for raw_param in path_item.get("parameters", []) + op.get("parameters", []):
        param = _resolve(surface, raw_param)
        schema = param.get("schema", {})
        rule = _Param(param["name"], bool(param.get("required")), _validator(surface, schema), _allows_array(schema))
        if param.get("in") == "path":
            rules.path_params[ours.get(param["name"], param["name"])] = rule
        elif param.get("in") == "query":
            rules.query[param["name"]] = rule
    body = op.get("requestBody")
    if body is not None:
        body = _resolve(surface, body)
        rules.body_required = bool(body.get("required"))
        rules.media_types = {}
        for media, content in body.get("content", {}).items():
            json_like = media == "application/json" or media.endswith("+json")
            schema = content.get("schema", {})
            rules.media_types[media.lower()] = _validator(surface, schema) if json_like else None
    return rules


class SpecValidator:
    """Per-endpoint :class:`OperationRules`, compiled on first use."""

    def __init__(self) -> None:
        self._rules: dict[str, OperationRules | None] = {}

    def rules(self, ep: Endpoint) -> OperationRules | None:
        """The compiled rules of ``ep``; ``None`` for a route Baseten's specs do not describe (gateway-only)."""
        if ep.name not in self._rules:
            found = find_operation(ep)
            self._rules[ep.name] = _compile(ep) if found is not None else None
        return self._rules[ep.name]

    def warm(self) -> list[str]:
        """Compile every endpoint now; return the names of those the specs do not describe."""
        return [ep.name for ep in ENDPOINTS if self.rules(ep) is None]


__all__ = [
    "OperationRules",
    "SpecValidator",
    "covered_operations",
    "find_operation",
    "load_spec",
    "spec_operations",
]
