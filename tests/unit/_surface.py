"""The hook's public surface as the tests enumerate it (runtime signatures and mypy's view)."""

from __future__ import annotations


def hook_method_pairs() -> list[str]:
    """Every public sync method of ``BasetenHook`` that has an ``a``-prefixed async twin (Airflow's own
    ``BaseHook`` methods left out)."""
    from airflow.sdk import BaseHook

    from airflow_provider_baseten.hooks.baseten import BasetenHook

    own = {n for n in dir(BasetenHook) if not n.startswith("_") and n not in dir(BaseHook)}
    return sorted(n for n in own if "a" + n in own and callable(getattr(BasetenHook, n)))
