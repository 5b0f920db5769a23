"""Chain deployments, chainlet logs, chain environments, promotions into them and chainlet settings.

Chains are listed, read and deleted in ``_deployments.py`` (with models); run in ``_openai.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.hooks._api import _Call, _m, _Reconcile, _v
from airflow_provider_baseten.hooks._core import _HookCore
from airflow_provider_baseten.hooks._deployments import _log_query

if TYPE_CHECKING:
    from airflow_provider_baseten.models import (
        ActivationResult,
        ChainDeployment,
        ChainEnvironment,
        ChainletInstanceTypeUpdate,
        LogLine,
        OkResult,
        StatusMessage,
        Tombstone,
    )

#: The keys of one chainlet's entry in ``create_chain_environment(chainlet_settings=...)``.
_CHAINLET_KEYS = {"autoscaling_settings", "instance_type_id"}


def _dep(chain_id: str, chain_deployment_id: str) -> dict[str, str]:
    return {"chain_id": _v("chain_id", chain_id), "chain_deployment_id": _v("chain_deployment_id", chain_deployment_id)}


def _env(chain_id: str, environment: str) -> dict[str, str]:
    return {"chain_id": _v("chain_id", chain_id), "env_name": _v("environment", environment)}


def _per_chainlet(field: str, value: Any) -> dict[str, Any]:
    """``value`` as a non-empty ``{chainlet name: ...}`` mapping, or a BasetenValidationError naming ``field``."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    if not isinstance(value, dict) or not value:
        raise BasetenValidationError(
            f"{field} must be a non-empty dict keyed by chainlet name, got {value!r}."[:300], field=field
        )
    for name in value:
        _v(field, name)
    return value


def _autoscaling(chainlet: str, settings: Any) -> dict[str, Any]:
    """One chainlet's autoscaling fields, range-checked; the error names the chainlet."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    m = _m()
    if not isinstance(settings, dict) or not settings:
        raise BasetenValidationError(
            f"Autoscaling settings of chainlet {chainlet!r} must be a non-empty dict, got {settings!r}."[:300],
            field="autoscaling_settings",
        )
    try:
        body: dict[str, Any] = m.options(m.AutoscalingSettingsUpdate, settings).body()
        return body
    except BasetenValidationError as exc:
        raise BasetenValidationError(f"Chainlet {chainlet!r}: {exc.message}", field=exc.field) from None


# -- Builders: what each endpoint sends. BasetenHook's methods (hooks/_endpoints.py, generated) send them. --


def list_chain_deployments(hook: _HookCore, /, chain_id: str) -> _Call[list[ChainDeployment]]:
    """All deployments of a chain, each with its chainlets."""
    m = _m()
    return _Call(
        "list_chain_deployments",
        {"chain_id": _v("chain_id", chain_id)},
        parse=lambda d: m.parse_list(m.ChainDeployment, d, "deployments", "list_chain_deployments"),
    )


def get_chain_deployment(hook: _HookCore, /, chain_id: str, chain_deployment_id: str) -> _Call[ChainDeployment]:
    """One chain deployment: its ``status`` and its chainlets (each with its own status and replicas)."""
    m = _m()
    return _Call(
        "get_chain_deployment",
        _dep(chain_id, chain_deployment_id),
        parse=lambda d: m.parse(m.ChainDeployment, d, "get_chain_deployment"),
    )


def delete_chain_deployment(hook: _HookCore, /, chain_id: str, chain_deployment_id: str) -> _Call[Tombstone]:
    """Delete a chain deployment (Baseten refuses one that serves an environment)."""
    m = _m()
    return _Call(
        "delete_chain_deployment",
        _dep(chain_id, chain_deployment_id),
        parse=lambda d: m.parse(m.Tombstone, d, "delete_chain_deployment"),
    )


def deactivate_chain_deployment(hook: _HookCore, /, chain_id: str, chain_deployment_id: str) -> _Call[ActivationResult]:
    """Deactivate a chain deployment (all its chainlets); returns ``{success}``."""
    m = _m()
    return _Call(
        "deactivate_chain_deployment",
        _dep(chain_id, chain_deployment_id),
        parse=lambda d: m.parse(m.ActivationResult, d or {}, "deactivate_chain_deployment"),
    )


def get_chainlet_logs(
    hook: _HookCore,
    /,
    chain_id: str,
    chain_deployment_id: str,
    chainlet_id: str,
    *,
    start_epoch_millis: int | None = None,
    end_epoch_millis: int | None = None,
    min_level: str | None = None,
    limit: int | None = None,
    direction: str | None = None,
    **filters: Any,
) -> _Call[list[LogLine]]:
    """One page of a chainlet's logs; takes the same window and filters as :meth:`get_deployment_logs`.

    :param chainlet_id: The chainlet's ``id`` (from :meth:`get_chain_deployment`), not its name.
    """
    m = _m()
    query = _log_query(start_epoch_millis, end_epoch_millis, min_level, limit, direction, filters)
    params = {**_dep(chain_id, chain_deployment_id), "chainlet_id": _v("chainlet_id", chainlet_id)}
    return _Call(
        "get_chainlet_logs", params, query=query, parse=lambda d: m.parse_list(m.LogLine, d, "logs", "chainlet logs")
    )


def list_chain_environments(hook: _HookCore, /, chain_id: str) -> _Call[list[ChainEnvironment]]:
    """All environments of a chain."""
    m = _m()
    return _Call(
        "list_chain_environments",
        {"chain_id": _v("chain_id", chain_id)},
        parse=lambda d: m.parse_list(m.ChainEnvironment, d, "environments", "list_chain_environments"),
    )


def get_chain_environment(hook: _HookCore, /, chain_id: str, environment: str) -> _Call[ChainEnvironment]:
    """One chain environment: what serves it, any candidate being promoted, and each chainlet's settings."""
    m = _m()
    return _Call(
        "get_chain_environment",
        _env(chain_id, environment),
        parse=lambda d: m.parse(m.ChainEnvironment, d, "get_chain_environment"),
    )


def create_chain_environment(
    hook: _HookCore,
    /,
    chain_id: str,
    name: str,
    *,
    promotion_settings: dict[str, Any] | None = None,
    chainlet_settings: dict[str, dict[str, Any]] | None = None,
) -> _Call[ChainEnvironment]:
    """Create a chain environment.

    :param promotion_settings: Baseten's promotion settings (``ramp_up_while_promoting``, ...).
    :param chainlet_settings: Per chainlet name, ``{"autoscaling_settings": {...}, "instance_type_id": "..."}``
        (either key may be left out), e.g. ``{"RandInt": {"instance_type_id": "2x8"}}``.
    """
    from airflow_provider_baseten.exceptions import BasetenValidationError

    m = _m()
    body: dict[str, Any] = {"name": _v("name", name)}
    if promotion_settings:
        body["promotion_settings"] = dict(promotion_settings)
    if chainlet_settings is not None:
        entries = []
        for chainlet, entry in _per_chainlet("chainlet_settings", chainlet_settings).items():
            if not isinstance(entry, dict) or set(entry) - _CHAINLET_KEYS:
                raise BasetenValidationError(
                    f"chainlet_settings[{chainlet!r}] takes only {sorted(_CHAINLET_KEYS)}, got {entry!r}."[:300],
                    field="chainlet_settings",
                )
            item: dict[str, Any] = {"chainlet_name": chainlet}
            if entry.get("autoscaling_settings"):
                item["autoscaling_settings"] = _autoscaling(chainlet, entry["autoscaling_settings"])
            if "instance_type_id" in entry:
                item["instance_type_id"] = _v("instance_type_id", entry["instance_type_id"])
            entries.append(item)
        body["chainlet_settings"] = entries
    lookup = get_chain_environment(hook, chain_id, name)
    existing = list_chain_environments(hook, chain_id)

    def pick(env: Any, before: list[Any]) -> Any:
        return env if env is not None and all(e.name != name for e in before) else None

    return _Call(
        "create_chain_environment",
        {"chain_id": _v("chain_id", chain_id)},
        body=body,
        parse=lambda d: m.parse(m.ChainEnvironment, d, "create_chain_environment"),
        reconcile=_Reconcile(existing, lookup, pick, f"chain environment {name!r}"),
    )


def update_chain_environment(
    hook: _HookCore, /, chain_id: str, environment: str, *, promotion_settings: dict[str, Any]
) -> _Call[OkResult]:
    """Update a chain environment's promotion settings (chainlet settings have their own methods)."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    m = _m()
    if not isinstance(promotion_settings, dict) or not promotion_settings:
        raise BasetenValidationError(
            "Give promotion_settings (a non-empty dict) to update.", field="promotion_settings"
        )
    return _Call(
        "update_chain_environment",
        _env(chain_id, environment),
        body={"promotion_settings": dict(promotion_settings)},
        parse=lambda d: m.parse(m.OkResult, d, "update_chain_environment"),
    )


def promote_to_chain_environment(
    hook: _HookCore,
    /,
    chain_id: str,
    environment: str,
    chain_deployment_id: str,
    *,
    scale_down_previous: bool = True,
) -> _Call[ChainDeployment]:
    """Promote a chain deployment into a chain environment; returns the promoted deployment.

    :param scale_down_previous: Scale down what the environment served before (``scale_down_previous_deployment``).
    """
    from airflow_provider_baseten.exceptions import BasetenValidationError

    m = _m()
    if not isinstance(scale_down_previous, bool):
        raise BasetenValidationError(
            f"scale_down_previous must be true or false, got {scale_down_previous!r}.", field="scale_down_previous"
        )
    return _Call(
        "promote_to_chain_environment",
        _env(chain_id, environment),
        body={
            "deployment_id": _v("chain_deployment_id", chain_deployment_id),
            "scale_down_previous_deployment": scale_down_previous,
        },
        parse=lambda d: m.parse(m.ChainDeployment, d, "promote_to_chain_environment"),
    )


def update_chainlet_autoscaling_settings(
    hook: _HookCore, /, chain_id: str, environment: str, settings: dict[str, dict[str, Any]]
) -> _Call[StatusMessage]:
    """Change chainlets' autoscaling in a chain environment; only the fields given change.

    :param settings: Per chainlet name, the fields to change, e.g. ``{"RandInt": {"min_replica": 1}}``; each
        is range-checked like :meth:`update_autoscaling_settings` before anything is sent.
    """
    m = _m()
    updates = [
        {"chainlet_name": chainlet, "autoscaling_settings": _autoscaling(chainlet, values)}
        for chainlet, values in _per_chainlet("settings", settings).items()
    ]
    return _Call(
        "update_chainlet_autoscaling_settings",
        _env(chain_id, environment),
        body={"updates": updates},
        parse=lambda d: m.parse(m.StatusMessage, d, "update_chainlet_autoscaling_settings"),
    )


def update_chainlet_instance_types(
    hook: _HookCore, /, chain_id: str, environment: str, instance_types: dict[str, str]
) -> _Call[ChainletInstanceTypeUpdate]:
    """Move chainlets of a chain environment to other instance types.

    Baseten may build a new chain deployment and promote it into the environment (``requires_redeployment``,
    ``chain_deployment``). Never resent once it may have taken effect.

    :param instance_types: Per chainlet name, the instance type id, e.g. ``{"RandInt": "A10G:2x24x96"}``.
    """
    m = _m()
    updates = [
        {"chainlet_name": chainlet, "instance_type_id": _v("instance_type_id", kind)}
        for chainlet, kind in _per_chainlet("instance_types", instance_types).items()
    ]
    return _Call(
        "update_chainlet_instance_types",
        _env(chain_id, environment),
        body={"updates": updates},
        parse=lambda d: m.parse(m.ChainletInstanceTypeUpdate, d, "update_chainlet_instance_types"),
    )
