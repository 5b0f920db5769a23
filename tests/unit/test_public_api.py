"""Public types come from public modules with ``__all__``, and are the very objects of the client core."""

from __future__ import annotations

import importlib

import pytest

from tests.unit._surface import hook_method_pairs

# public module -> {name: the internal module that defines it}
PUBLIC = {
    "airflow_provider_baseten.config": {
        "Settings": "airflow_provider_baseten.client.transport",
        "RetryPolicy": "airflow_provider_baseten.client.transport",
        "Timeouts": "airflow_provider_baseten.client.transport",
        "Gateway": "airflow_provider_baseten.client.transport",
    },
    "airflow_provider_baseten.batch": {
        "BatchResult": "airflow_provider_baseten.client.batch",
        "BatchOptions": "airflow_provider_baseten.client.batch.options",
        **{
            name: "airflow_provider_baseten.batch_io"
            for name in (
                "MissingExtraError",
                "Shard",
                "count_records",
                "merge_outputs",
                "read_records",
                "read_results",
                "split_input",
                "write_records",
            )
        },
    },
    "airflow_provider_baseten.cache": {"ResultCache": "airflow_provider_baseten.client.cache"},
    "airflow_provider_baseten.operators.base": {
        "BasetenBaseOperator": "airflow_provider_baseten.operators._base",
        "BasetenWaitingOperator": "airflow_provider_baseten.operators._base",
    },
    "airflow_provider_baseten.sensors.base": {
        "BasetenTriggerSensor": "airflow_provider_baseten.sensors._base",
        "BasetenSensorTimeout": "airflow_provider_baseten.sensors._base",
    },
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_module_exports_the_same_objects_as_the_old_path(module: str) -> None:
    public = importlib.import_module(module)
    assert sorted(public.__all__) == sorted(PUBLIC[module])
    for name, old in PUBLIC[module].items():
        assert getattr(public, name) is getattr(importlib.import_module(old), name), name


@pytest.mark.parametrize(
    "module",
    [
        "airflow_provider_baseten.exceptions",
        "airflow_provider_baseten.models",
        "airflow_provider_baseten.hooks.baseten",
        *sorted(PUBLIC),
    ],
)
def test_all_lists_only_public_names_that_exist(module: str) -> None:
    public = importlib.import_module(module)
    names = public.__all__
    assert names and len(names) == len(set(names))
    for name in names:
        assert not name.startswith("_"), f"{module}.__all__ exports the internal {name}"
        assert hasattr(public, name), f"{module}.__all__ names {name}, which it does not define"


def test_every_error_class_is_exported() -> None:
    from airflow_provider_baseten import exceptions

    classes = {
        name
        for name, value in vars(exceptions).items()
        if isinstance(value, type) and issubclass(value, exceptions.BasetenError)
    }
    assert classes <= set(exceptions.__all__)


def test_every_model_class_is_exported() -> None:
    from pydantic import BaseModel

    from airflow_provider_baseten import models

    classes = {
        name
        for name, value in vars(models).items()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == models.__name__
        and not name.startswith("_")
    }
    assert classes and classes <= set(models.__all__)


def test_every_async_twin_shows_its_sync_parameters_at_runtime() -> None:
    """``help(hook.aget_model)`` and introspecting IDEs see the real parameters, not ``*args, **kwargs``."""
    import inspect

    from airflow_provider_baseten.hooks.baseten import BasetenHook

    pairs = hook_method_pairs()
    assert len(pairs) >= 50
    for name in pairs:
        sync = inspect.signature(getattr(BasetenHook, name)).parameters
        twin = inspect.signature(getattr(BasetenHook, "a" + name)).parameters
        assert list(twin.values()) == list(sync.values()), name
        assert not any(p.kind is p.VAR_POSITIONAL for p in twin.values()), name
