"""``cache=`` on the hook's deterministic calls: what they are keyed on, and the one lookup that resolves it.

The key names the deployment that *answers*, not the name the call used: an environment (``production`` by
default) is resolved to the deployment it serves now, once per hook (one task), through
``get_environment`` (``get_deployment("development")`` for the development deployment). After a promotion
the environment serves another deployment, so its outputs are other entries and nothing stale is served.
On Model APIs the key is the model's name (``model_apis:{model}``): Baseten does not say which version
serves it, so a new version behind the same name would hit the old entries (documented; use a ``ttl``).
Never cached: what a status call answers. The resolution itself is per hook, never per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.hooks._api import _Cached, _Call, _m, _v

if TYPE_CHECKING:
    from airflow_provider_baseten.hooks._core import _HookCore


def cache_for(
    hook: _HookCore,
    /,
    cache: Any,
    route: str,
    *,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    model_apis_model: str | None = None,
) -> _Cached | None:
    """The :class:`_Cached` of a call given ``cache=`` (``None`` when it was not), checked before sending.

    :param cache: A :class:`~airflow_provider_baseten.cache.ResultCache` or a folder for one.
    :param route: What the key calls the route (``predict``, ``v1/embeddings``...).
    :param model_apis_model: On Model APIs: the model's name, which is then the scope.
    """
    from airflow_provider_baseten.client.cache import as_cache

    store = as_cache(cache)
    if store is None:
        return None
    if model_apis_model is not None:
        return _Cached(store, route, scope=f"model_apis:{model_apis_model}")
    from airflow_provider_baseten.hooks._core import inference_target

    model = hook._model(model_id)
    target, params = inference_target(environment, deployment_id)
    if target == "deployment":
        return _Cached(store, route, scope=_scope(model, params["deployment_id"]))
    m = _m()
    if target == "development":
        from airflow_provider_baseten.client.routes import BY_TARGET

        resolve: _Call[str] = _Call(
            BY_TARGET["get_deployment", "development"],
            {"model_id": model},
            parse=lambda d: _scope(model, m.parse(m.Deployment, d, "get_deployment").id),
        )
    else:
        env = _v("environment", params.get("env_name", "production"))

        def serving(d: Any) -> str:
            return _serving(model, env, m.parse(m.Environment, d, "get_environment"))

        resolve = _Call("get_environment", {"model_id": model, "env_name": env}, parse=serving)
    return _Cached(store, route, resolve=resolve, memo=(model, target, params.get("env_name", "")))


def _scope(model_id: str, deployment_id: str) -> str:
    return f"deployment:{model_id}/{deployment_id}"


def _serving(model_id: str, env: str, environment: Any) -> str:
    """The scope of the deployment ``environment`` serves; an environment serving none is an error."""
    current = environment.current_deployment
    if current is None or not current.id:
        from airflow_provider_baseten.exceptions import BasetenError

        raise BasetenError(
            f"Environment {env!r} of model {model_id} serves no deployment yet: there is nothing to predict with "
            "or to cache against."
        )
    return _scope(model_id, current.id)
