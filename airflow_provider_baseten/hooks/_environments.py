"""Environments and promotions (and their controls), secrets and API keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.hooks._api import (
    _Call,
    _for_team,
    _m,
    _Reconcile,
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


# -- Builders: what each endpoint sends. BasetenHook's methods (hooks/_endpoints.py, generated) send them. --


def list_environments(hook: _HookCore, /, model_id: str | None = None) -> _Call[list[Environment]]:
    """All environments of a model."""
    m = _m()
    return _Call(
        "list_environments",
        {"model_id": hook._model(model_id)},
        parse=lambda d: m.parse_list(m.Environment, d, "environments", "list_environments"),
    )


def get_environment(hook: _HookCore, /, environment: str, *, model_id: str | None = None) -> _Call[Environment]:
    """One environment, with its current and candidate deployments and any in-progress promotion."""
    m = _m()
    return _Call(
        "get_environment",
        {"model_id": hook._model(model_id), "env_name": _v("environment", environment)},
        parse=lambda d: m.parse(m.Environment, d, "get_environment"),
    )


def create_environment(
    hook: _HookCore,
    /,
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
    model = hook._model(model_id)
    lookup = get_environment(hook, name, model_id=model)
    existing = list_environments(hook, model)

    def pick(env: Any, before: list[Any]) -> Any:
        return env if env is not None and all(e.name != name for e in before) else None

    return _Call(
        "create_environment",
        {"model_id": model},
        body=body,
        parse=lambda d: m.parse(m.Environment, d, "create_environment"),
        reconcile=_Reconcile(existing, lookup, pick, f"environment {name!r}"),
    )


def update_environment(
    hook: _HookCore,
    /,
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
        {"model_id": hook._model(model_id), "env_name": _v("environment", environment)},
        body=body,
        parse=lambda d: m.parse(m.StatusMessage, d, "update_environment"),
    )


def activate_environment(
    hook: _HookCore, /, environment: str, *, model_id: str | None = None
) -> _Call[ActivationResult]:
    """Activate the deployment behind an environment."""
    m = _m()
    return _Call(
        "activate_environment",
        {"model_id": hook._model(model_id), "env_name": _v("environment", environment)},
        parse=lambda d: m.parse(m.ActivationResult, d or {}, "activate_environment"),
    )


def deactivate_environment(
    hook: _HookCore, /, environment: str, *, model_id: str | None = None
) -> _Call[ActivationResult]:
    """Deactivate the deployment behind an environment."""
    m = _m()
    return _Call(
        "deactivate_environment",
        {"model_id": hook._model(model_id), "env_name": _v("environment", environment)},
        parse=lambda d: m.parse(m.ActivationResult, d or {}, "deactivate_environment"),
    )


def promote_deployment(
    hook: _HookCore,
    /,
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
    model = hook._model(model_id)
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
            "Promoting into an environment needs the deployment's id; get it with get_deployment('development').id.",
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


def cancel_promotion(
    hook: _HookCore, /, environment: str = "production", *, model_id: str | None = None
) -> _Call[StatusMessage]:
    """Cancel the in-progress promotion into ``environment`` (``CANCELED`` or ``RAMPING_DOWN``)."""
    m = _m()
    return _Call(
        "cancel_promotion",
        {"model_id": hook._model(model_id), "env_name": _v("environment", environment)},
        parse=lambda d: m.parse(m.StatusMessage, d, "cancel_promotion"),
    )


def _signal(hook: _HookCore, /, name: str, environment: str, model_id: str | None) -> _Call[SignalResult]:
    m = _m()
    return _Call(
        name,
        {"model_id": hook._model(model_id), "env_name": _v("environment", environment)},
        parse=lambda d: m.parse(m.SignalResult, d, name),
    )


def pause_promotion(
    hook: _HookCore, /, environment: str = "production", *, model_id: str | None = None
) -> _Call[SignalResult]:
    """Pause the rolling promotion into ``environment`` after its current step (status ``PAUSED``)."""
    return _signal(hook, "pause_promotion", environment, model_id)


def resume_promotion(
    hook: _HookCore, /, environment: str = "production", *, model_id: str | None = None
) -> _Call[SignalResult]:
    """Resume a paused promotion into ``environment`` where it stopped."""
    return _signal(hook, "resume_promotion", environment, model_id)


def force_cancel_promotion(
    hook: _HookCore, /, environment: str = "production", *, model_id: str | None = None
) -> _Call[SignalResult]:
    """Stop the promotion into ``environment`` at once and roll back to the previous deployment."""
    return _signal(hook, "force_cancel_promotion", environment, model_id)


def force_roll_forward_promotion(
    hook: _HookCore, /, environment: str = "production", *, model_id: str | None = None
) -> _Call[SignalResult]:
    """Finish the promotion into ``environment`` at once: all traffic to the new deployment."""
    return _signal(hook, "force_roll_forward_promotion", environment, model_id)


def list_secrets(hook: _HookCore, /, *, team_id: str | None = None) -> _Call[list[Secret]]:
    """Secret names in the workspace, or in a team (never their values).

    :param team_id: A team's id: that team's secrets instead of the workspace's.
    """
    m = _m()
    call = _Call("list_secrets", parse=lambda d: m.parse_list(m.Secret, d, "secrets", "list_secrets"))
    return _for_team(call, team_id)


def upsert_secret(hook: _HookCore, /, name: str, value: str, *, team_id: str | None = None) -> _Call[Secret]:
    """Create or update a workspace (or team) secret. The value is masked in Airflow's logs.

    :param team_id: A team's id: the secret is that team's instead of the workspace's.
    """
    from airflow_provider_baseten.client.redact import register_secret
    from airflow_provider_baseten.exceptions import BasetenValidationError

    m = _m()
    if not isinstance(value, str) or not value:
        raise BasetenValidationError("value must be a non-empty string.", field="value")
    register_secret(value)
    call = _Call(
        "upsert_secret",
        body={"name": _v("name", name), "value": value},
        parse=lambda d: m.parse(m.Secret, d, "upsert_secret"),
    )
    return _for_team(call, team_id)


def delete_secret(hook: _HookCore, /, name: str, *, team_id: str | None = None) -> _Call[Tombstone]:
    """Delete a workspace (or team) secret by name (answers with its ``name``). A second delete answers 404.

    :param team_id: A team's id: delete that team's secret instead of the workspace's.
    """
    m = _m()
    call = _Call(
        "delete_secret", {"secret_name": _v("name", name)}, parse=lambda d: m.parse(m.Tombstone, d, "delete_secret")
    )
    return _for_team(call, team_id)


def list_api_keys(hook: _HookCore, /) -> _Call[list[ApiKey]]:
    """API keys' metadata (prefix, name, type)."""
    m = _m()
    return _Call("list_api_keys", parse=lambda d: m.parse_list(m.ApiKey, d, "keys", "list_api_keys"))


def create_api_key(
    hook: _HookCore,
    /,
    type: str = "WORKSPACE_INVOKE",
    *,
    name: str | None = None,
    model_ids: list[str] | None = None,
    team_id: str | None = None,
) -> _Call[CreatedApiKey]:
    """Create an API key. The plaintext is returned once; it is masked in logs at once.

    :param team_id: A team's id: a key of that team instead of the workspace.
    """
    from airflow_provider_baseten.client.redact import register_secret
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

    return _for_team(_Call("create_api_key", body=body, parse=parse), team_id)


def delete_api_key(hook: _HookCore, /, prefix: str) -> _Call[Tombstone]:
    """Delete an API key by its prefix."""
    m = _m()
    return _Call("delete_api_key", {"prefix": prefix}, parse=lambda d: m.parse(m.Tombstone, d or {}, "delete"))
