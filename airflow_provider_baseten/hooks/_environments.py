"""Environments and promotions (and their controls), secrets and API keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.hooks._api import (
    _api,
    _Call,
    _m,
    _Reconcile,
    _twin,
    _v,
)
from airflow_provider_baseten.hooks._core import _HookCore

if TYPE_CHECKING:
    from airflow_provider_baseten.models import (
        ActivationResult,
        ApiKey,
        CreatedApiKey,
        Deployment,
        Environment,
        Secret,
        SignalResult,
        StatusMessage,
        Tombstone,
    )


class _EnvironmentApi(_HookCore):
    """Environment, promotion, secret and API-key methods of :class:`~airflow_provider_baseten.hooks.baseten.BasetenHook`."""

    @_api
    def list_environments(self, model_id: str | None = None) -> _Call[list[Environment]]:
        """All environments of a model."""
        m = _m()
        return _Call(
            "list_environments",
            {"model_id": self._model(model_id)},
            parse=lambda d: m.parse_list(m.Environment, d, "environments", "list_environments"),
        )

    alist_environments = _twin(list_environments)

    @_api
    def get_environment(self, environment: str, *, model_id: str | None = None) -> _Call[Environment]:
        """One environment, with its current and candidate deployments and any in-progress promotion."""
        m = _m()
        return _Call(
            "get_environment",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            parse=lambda d: m.parse(m.Environment, d, "get_environment"),
        )

    aget_environment = _twin(get_environment)

    @_api
    def create_environment(
        self,
        name: str,
        *,
        model_id: str | None = None,
        autoscaling_settings: dict[str, Any] | None = None,
        promotion_settings: dict[str, Any] | None = None,
    ) -> _Call[Environment]:
        """Create an environment."""
        m = _m()
        body: dict[str, Any] = {"name": _v("name", name)}
        if autoscaling_settings:
            body["autoscaling_settings"] = m.options(m.AutoscalingSettingsUpdate, autoscaling_settings).body()
        if promotion_settings:
            body["promotion_settings"] = dict(promotion_settings)
        model = self._model(model_id)
        lookup = type(self).get_environment.__wrapped__(self, name, model_id=model)
        existing = type(self).list_environments.__wrapped__(self, model)

        def pick(env: Any, before: list[Any]) -> Any:
            return env if env is not None and all(e.name != name for e in before) else None

        return _Call(
            "create_environment",
            {"model_id": model},
            body=body,
            parse=lambda d: m.parse(m.Environment, d, "create_environment"),
            reconcile=_Reconcile(existing, lookup, pick, f"environment {name!r}"),
        )

    acreate_environment = _twin(create_environment)

    @_api
    def update_environment(
        self,
        environment: str,
        *,
        model_id: str | None = None,
        autoscaling_settings: dict[str, Any] | None = None,
        promotion_settings: dict[str, Any] | None = None,
    ) -> _Call[StatusMessage]:
        """Update an environment's autoscaling and/or promotion settings."""
        from airflow_provider_baseten.exceptions import BasetenValidationError

        m = _m()
        body: dict[str, Any] = {}
        if autoscaling_settings:
            body["autoscaling_settings"] = m.options(m.AutoscalingSettingsUpdate, autoscaling_settings).body()
        if promotion_settings:
            body["promotion_settings"] = dict(promotion_settings)
        if not body:
            raise BasetenValidationError(
                "Give autoscaling_settings and/or promotion_settings to update.", field="autoscaling_settings"
            )
        return _Call(
            "update_environment",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            body=body,
            parse=lambda d: m.parse(m.StatusMessage, d, "update_environment"),
        )

    aupdate_environment = _twin(update_environment)

    @_api
    def activate_environment(self, environment: str, *, model_id: str | None = None) -> _Call[ActivationResult]:
        """Activate the deployment behind an environment."""
        m = _m()
        return _Call(
            "activate_environment",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            parse=lambda d: m.parse(m.ActivationResult, d or {}, "activate_environment"),
        )

    aactivate_environment = _twin(activate_environment)

    @_api
    def deactivate_environment(self, environment: str, *, model_id: str | None = None) -> _Call[ActivationResult]:
        """Deactivate the deployment behind an environment."""
        m = _m()
        return _Call(
            "deactivate_environment",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            parse=lambda d: m.parse(m.ActivationResult, d or {}, "deactivate_environment"),
        )

    adeactivate_environment = _twin(deactivate_environment)

    @_api
    def promote_deployment(
        self,
        deployment_id: str,
        *,
        model_id: str | None = None,
        environment: str | None = None,
        scale_down_previous: bool = True,
        preserve_env_instance_type: bool = True,
    ) -> _Call[Deployment]:
        """Promote a deployment to production, or into ``environment``; returns the promoted deployment.

        :param deployment_id: The deployment's id, or ``"development"`` (to production only).
        :param scale_down_previous: Scale down what the target served before.
        """
        from airflow_provider_baseten.exceptions import BasetenValidationError

        m = _m()
        for name, flag in (
            ("scale_down_previous", scale_down_previous),
            ("preserve_env_instance_type", preserve_env_instance_type),
        ):
            if not isinstance(flag, bool):
                raise BasetenValidationError(f"{name} must be true or false, got {flag!r}.", field=name)
        model = self._model(model_id)
        parse = lambda d: m.parse(m.Deployment, d, "promote_deployment")  # noqa: E731
        if environment in (None, "production"):
            body = {
                "scale_down_previous_production": scale_down_previous,
                "preserve_env_instance_type": preserve_env_instance_type,
            }
            if deployment_id == "development":
                return _Call("promote_development_deployment", {"model_id": model}, body=body, parse=parse)
            params = {"model_id": model, "deployment_id": _v("deployment_id", deployment_id)}
            return _Call("promote_deployment", params, body=body, parse=parse)
        if deployment_id == "development":
            raise BasetenValidationError(
                "Promoting into an environment needs the deployment's id; get it with "
                "get_deployment('development').id.",
                field="deployment_id",
            )
        return _Call(
            "promote_to_environment",
            {"model_id": model, "env_name": _v("environment", environment)},
            body={
                "deployment_id": _v("deployment_id", deployment_id),
                "scale_down_previous_deployment": scale_down_previous,
                "preserve_env_instance_type": preserve_env_instance_type,
            },
            parse=parse,
        )

    apromote_deployment = _twin(promote_deployment)

    @_api
    def cancel_promotion(self, environment: str = "production", *, model_id: str | None = None) -> _Call[StatusMessage]:
        """Cancel the in-progress promotion into ``environment`` (``CANCELED`` or ``RAMPING_DOWN``)."""
        m = _m()
        return _Call(
            "cancel_promotion",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            parse=lambda d: m.parse(m.StatusMessage, d, "cancel_promotion"),
        )

    acancel_promotion = _twin(cancel_promotion)

    def _signal(self, action: str, environment: str, model_id: str | None) -> _Call[SignalResult]:
        m = _m()
        return _Call(
            f"{action}_promotion",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            parse=lambda d: m.parse(m.SignalResult, d, f"{action}_promotion"),
        )

    @_api
    def pause_promotion(self, environment: str = "production", *, model_id: str | None = None) -> _Call[SignalResult]:
        """Pause the rolling promotion into ``environment`` after its current step (status ``PAUSED``)."""
        return self._signal("pause", environment, model_id)

    apause_promotion = _twin(pause_promotion)

    @_api
    def resume_promotion(self, environment: str = "production", *, model_id: str | None = None) -> _Call[SignalResult]:
        """Resume a paused promotion into ``environment`` where it stopped."""
        return self._signal("resume", environment, model_id)

    aresume_promotion = _twin(resume_promotion)

    @_api
    def force_cancel_promotion(
        self, environment: str = "production", *, model_id: str | None = None
    ) -> _Call[SignalResult]:
        """Stop the promotion into ``environment`` at once and roll back to the previous deployment."""
        return self._signal("force_cancel", environment, model_id)

    aforce_cancel_promotion = _twin(force_cancel_promotion)

    @_api
    def force_roll_forward_promotion(
        self, environment: str = "production", *, model_id: str | None = None
    ) -> _Call[SignalResult]:
        """Finish the promotion into ``environment`` at once: all traffic to the new deployment."""
        return self._signal("force_roll_forward", environment, model_id)

    aforce_roll_forward_promotion = _twin(force_roll_forward_promotion)

    @_api
    def list_secrets(self) -> _Call[list[Secret]]:
        """Secret names in the workspace (never their values)."""
        m = _m()
        return _Call("list_secrets", parse=lambda d: m.parse_list(m.Secret, d, "secrets", "list_secrets"))

    alist_secrets = _twin(list_secrets)

    @_api
    def upsert_secret(self, name: str, value: str) -> _Call[Secret]:
        """Create or update a workspace secret. The value is masked in Airflow's logs."""
        from airflow_provider_baseten._redact import register_secret
        from airflow_provider_baseten.exceptions import BasetenValidationError

        m = _m()
        if not isinstance(value, str) or not value:
            raise BasetenValidationError("value must be a non-empty string.", field="value")
        register_secret(value)
        return _Call(
            "upsert_secret",
            body={"name": _v("name", name), "value": value},
            parse=lambda d: m.parse(m.Secret, d, "upsert_secret"),
        )

    aupsert_secret = _twin(upsert_secret)

    @_api
    def list_api_keys(self) -> _Call[list[ApiKey]]:
        """API keys' metadata (prefix, name, type)."""
        m = _m()
        return _Call("list_api_keys", parse=lambda d: m.parse_list(m.ApiKey, d, "keys", "list_api_keys"))

    alist_api_keys = _twin(list_api_keys)

    @_api
    def create_api_key(
        self, type: str = "WORKSPACE_INVOKE", *, name: str | None = None, model_ids: list[str] | None = None
    ) -> _Call[CreatedApiKey]:
        """Create an API key. The plaintext is returned once; it is masked in logs at once."""
        from airflow_provider_baseten._redact import register_secret
        from airflow_provider_baseten.exceptions import BasetenValidationError

        m = _m()
        allowed = {t.value for t in m.ApiKeyType}
        if type not in allowed:
            raise BasetenValidationError(f"type must be one of {sorted(allowed)}, got {type!r}.", field="type")
        body: dict[str, Any] = {"type": type}
        if name is not None:
            body["name"] = name
        if model_ids is not None:
            body["model_ids"] = [_v("model_ids", x) for x in model_ids]

        def parse(d: Any) -> Any:
            if isinstance(d, dict) and isinstance(d.get("api_key"), str):
                register_secret(d["api_key"])
            return m.parse(m.CreatedApiKey, d, "create_api_key")

        return _Call("create_api_key", body=body, parse=parse)

    acreate_api_key = _twin(create_api_key)

    @_api
    def delete_api_key(self, prefix: str) -> _Call[Tombstone]:
        """Delete an API key by its prefix."""
        m = _m()
        return _Call("delete_api_key", {"prefix": prefix}, parse=lambda d: m.parse(m.Tombstone, d or {}, "delete"))

    adelete_api_key = _twin(delete_api_key)
