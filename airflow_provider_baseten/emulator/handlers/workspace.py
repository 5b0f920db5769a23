"""Workspace endpoints of the emulated API: secrets and API keys (never kept in plaintext)."""

from __future__ import annotations

from typing import Any

from airflow_provider_baseten.emulator.core import StateCore
from airflow_provider_baseten.emulator.objects import (
    TEAM,
    ApiError,
)


class WorkspaceHandlers(StateCore):
    """Secrets and API keys. Handlers are ``_h_<endpoint name>``; see :meth:`.EmulatorState.handle`."""

    # -- secrets and API keys ------------------------------------------------------------------------
    def _h_list_secrets(self, *_: Any) -> Any:
        return 200, {"secrets": [self._public(s) for s in self.secrets.values()]}

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _h_upsert_secret(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        name, value = body.get("name"), body.get("value")
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ApiError(422, "name and value (strings) are required")
        old = self.secrets.get(name)
        secret = self._secret(name, value, self.clock.now())
        if old:  # the id and creation time survive rotation
            secret["id"], secret["created_at"] = old["id"], old["created_at"]
        self.secrets[name] = secret
        return 200, self._public(secret)

    def _h_delete_secret(self, params: dict[str, str], *_: Any) -> Any:
        name = params.get("secret_name") or ""
        if self.secrets.pop(name, None) is None:
            raise ApiError(404, f"Secret {name} not found")
        return 200, {"name": name}

    def _h_list_api_keys(self, *_: Any) -> Any:
        return 200, {"keys": list(self.api_keys.values())}

    def _h_create_api_key(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        kind = body.get("type")
        if kind not in ("PERSONAL", "WORKSPACE_MANAGE_ALL", "WORKSPACE_EXPORT_METRICS", "WORKSPACE_INVOKE"):
            raise ApiError(
                422, "type must be PERSONAL, WORKSPACE_MANAGE_ALL, WORKSPACE_EXPORT_METRICS or WORKSPACE_INVOKE"
            )
        prefix = self.new_id()
        self.api_keys[prefix] = {
            "prefix": prefix,
            "name": body.get("name"),
            "type": kind,
            "model_ids": body.get("model_ids"),
            "team_name": TEAM,
        }
        # The plaintext is returned once, here, and not kept.
        return 200, {"api_key": f"{prefix}.{self.new_id(32)}"}

    def _h_delete_api_key(self, params: dict[str, str], *_: Any) -> Any:
        prefix = params.get("prefix") or ""
        if prefix not in self.api_keys:
            raise ApiError(404, f"API key {prefix} not found")
        del self.api_keys[prefix]
        return 200, {"prefix": prefix}
