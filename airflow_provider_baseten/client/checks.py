"""Argument checks, written once: each raises :class:`BasetenValidationError` (a ``ValueError``) naming the
argument (``field``) and what it must be, before anything is sent.

Why a module of its own: ``True`` is an ``int`` in Python, so "a count" is ``isinstance(x, int) and not
isinstance(x, bool)``, and that test (with its range and its message) was written by hand in a dozen places,
each wording the same rule differently. Here it is one function per kind of value, one wording per rule;
``tests/unit/test_checks.py`` fails if the hand-rolled form comes back anywhere else in the provider.
(The emulator keeps its own checks: it is a separate, strict server.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from typing import Any, TypedDict, TypeGuard, TypeVar

from airflow_provider_baseten.exceptions import BasetenValidationError

T = TypeVar("T")


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an integer: an ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a real number: an ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _span(what: str, low: float | None, high: float | None) -> str:
    """``"an integer from 1 to 10"``, ``"a positive integer"``, ``"a number >= 0"``..."""
    if low is not None and high is not None:
        return f"{what} from {low} to {high}"
    if low == 1 and high is None and what == "an integer":
        return "a positive integer"
    if low is not None:
        return f"{what} >= {low}"
    return what if high is None else f"{what} <= {high}"


def _refuse(name: str, value: Any, must: str, also: str) -> BasetenValidationError:
    return BasetenValidationError(f"{name} must be {must}{f' or {also}' if also else ''}, got {value!r}.", field=name)


def int_in(
    name: str, value: Any, low: int | None = None, high: int | None = None, *, what: str = "an integer", also: str = ""
) -> int:
    """``value`` if it is an integer (not a bool) from ``low`` to ``high`` (either may be open).

    ``what`` names the kind of integer in the message (``"a min_replica count"``); ``also`` names what else
    the caller accepts, for the message only (``"'auto'"``).
    """
    if is_int(value) and (low is None or value >= low) and (high is None or value <= high):
        return value
    raise _refuse(name, value, _span(what, low, high), also)


def optional_int_in(
    name: str, value: Any, low: int | None = None, high: int | None = None, *, what: str = "an integer"
) -> int | None:
    """``None``, or ``value`` checked by :func:`int_in`."""
    return None if value is None else int_in(name, value, low, high, what=what, also="None")


def number_in(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    what: str = "a number",
    also: str = "",
) -> float:
    """``value`` as a float if it is a number (not a bool) from ``low`` to ``high`` (either may be open)."""
    if is_number(value) and (low is None or value >= low) and (high is None or value <= high):
        return float(value)
    raise _refuse(name, value, _span(what, low, high), also)


def optional_number_in(
    name: str, value: Any, low: float | None = None, high: float | None = None, *, what: str = "a number"
) -> float | None:
    """``None``, or ``value`` checked by :func:`number_in`."""
    return None if value is None else number_in(name, value, low, high, what=what, also="None")


def positive_number(name: str, value: Any, *, what: str = "a positive number", also: str = "") -> float:
    """``value`` as a float if it is a number above 0 (not a bool)."""
    if is_number(value) and value > 0:
        return float(value)
    raise _refuse(name, value, what, also)


def flag(name: str, value: Any, *, none_ok: bool = False) -> bool | None:
    """``value`` if it is ``True`` or ``False`` (or ``None`` when ``none_ok``); ``1`` or ``"yes"`` is refused."""
    if isinstance(value, bool) or (none_ok and value is None):
        return value
    raise _refuse(name, value, "True, False or None" if none_ok else "True or False", "")


def one_of(name: str, value: T, choices: Collection[T]) -> T:
    """``value`` if it is one of ``choices`` (compared by type too: ``1`` is not ``True``)."""
    if any(type(value) is type(c) and value == c for c in choices):
        return value
    listed = list(choices)
    must = " or ".join(map(repr, listed)) if len(listed) <= 2 else f"one of {listed}"
    raise _refuse(name, value, must, "")


#: ``batch_size`` of ``BasetenHook.embed_batch``: 1 to 1024 texts per request (the performance client's range).
MAX_EMBED_BATCH = 1024


def check_packing(batch_size: Any, max_chars_per_request: Any) -> None:
    """Check ``embed_batch``'s packing arguments (:class:`BasetenValidationError`, a ``ValueError``).

    Here rather than in ``hooks/_openai.py`` because ``EmbedOperator`` checks them when the DAG is parsed, and
    importing the hook module there would add the hook's import time to every parse.
    """
    int_in("batch_size", batch_size, 1, MAX_EMBED_BATCH)
    optional_int_in("max_chars_per_request", max_chars_per_request, 1)


_MAX_ID = 128


def validate_id(name: str, value: Any) -> str:
    """Check an id that goes into a URL path. Raises :class:`BasetenValidationError` naming ``name``."""
    if not isinstance(value, str) or not value.strip():
        raise BasetenValidationError(f"{name} must be a non-empty string, got {value!r}.", field=name)
    bad = [c for c in ("/", "?", "#", "..", " ", "\\", "%") if c in value]
    if bad or len(value) > _MAX_ID or not value.isprintable():
        why = f"contains {bad[0]!r}" if bad else ("is too long" if len(value) > _MAX_ID else "is not printable")
        raise BasetenValidationError(
            f"{name} {value[:40]!r} {why}; Baseten ids are short alphanumeric strings (e.g. 'abcd1234').",
            field=name,
        )
    return value


#: The environment names that are not custom environments: the production environment and the development
#: deployment. Given as ``deployment_id``, they are deprecated aliases of ``environment=`` (:func:`check_target`).
NAMED_TARGETS = ("production", "development")


def is_template(value: object) -> bool:
    """Whether ``value`` is known only at run time: a Jinja template not rendered yet, or an ``XComArg`` (any
    value Airflow resolves when the task runs). Such a value is checked after rendering, at execute."""
    if isinstance(value, str):
        return "{{" in value
    return callable(getattr(value, "resolve", None))  # XComArg and the SDK's other ResolveMixin values


def warn_at_caller(message: str, category: type[Warning]) -> None:
    """Warn at the DAG author's line: the first frame outside this package and Airflow's operator machinery
    (its metaclass and ``apply_defaults``), however deep the ``__init__`` chain that reached the warning."""
    import sys
    import warnings

    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        ("airflow_provider_baseten.", "airflow.sdk.", "airflow.models.", "asyncio.")
    ):
        frame = frame.f_back
    globs = frame.f_globals
    warnings.warn_explicit(
        message,
        category,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=globs.get("__name__"),
        registry=globs.setdefault("__warningregistry__", {}),
        module_globals=globs,
    )


def check_target(
    environment: Any, deployment_id: Any, *, who: str, templates_ok: bool = False, regional: bool = False
) -> tuple[str | None, str | None]:
    """The one rule for which deployment of a model a call addresses; returns ``(environment, deployment_id)``.

    - neither given: ``(None, None)``, the production environment;
    - ``environment="production"``: the production environment; ``"development"``: the development deployment;
      any other name: that custom environment;
    - ``deployment_id``: that deployment. ``deployment_id="production"`` / ``"development"`` is a deprecated
      alias of ``environment=`` (an ``AirflowProviderDeprecationWarning``) and comes back as the environment;
    - both given: :class:`BasetenValidationError`, as is a name that cannot go into a URL.

    Every operator and sensor that addresses a model checks its arguments here when it is built (with
    ``templates_ok=True``, which leaves a ``{{ ... }}`` value unchecked) and again after templating, at execute;
    the hook routes its calls by the same rule.

    - ``regional=True``: the environment named by ``environment`` on its regional host
      (``model-{model_id}-{environment}``, see :func:`check_regional`).

    :param who: The operator, sensor or method checking, for the messages.
    :param templates_ok: Keep a value that is still a Jinja template as it is (it is checked once rendered).
    :param regional: The call goes to a regional environment's own host.
    """
    if environment is not None and deployment_id is not None:
        raise BasetenValidationError(
            f"{who}: give environment= or deployment_id=, not both (got environment={environment!r}, "
            f"deployment_id={deployment_id!r}). environment= names an environment ('production', 'development' "
            "or a custom one); deployment_id= one deployment.",
            field="deployment_id",
        )
    if deployment_id in NAMED_TARGETS:
        from airflow.exceptions import AirflowProviderDeprecationWarning

        warn_at_caller(
            f"{who}: deployment_id={deployment_id!r} is deprecated; use environment={deployment_id!r} instead "
            "(deployment_id= is for a deployment's id).",
            AirflowProviderDeprecationWarning,
        )
        environment, deployment_id = deployment_id, None
    for name, value in (("environment", environment), ("deployment_id", deployment_id)):
        if value is not None and not (templates_ok and is_template(value)):
            validate_id(name, value)
    if regional:
        check_regional(environment, deployment_id, who=who)
    return environment, deployment_id


#: A regional environment's name is part of a host name (``model-{model_id}-{env_name}.api.baseten.co``): one
#: DNS label's characters, lowercase letters, digits and inner hyphens.
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_regional(environment: Any, deployment_id: Any, *, who: str) -> None:
    """Refuse, before sending, a regional call that names no regional environment.

    A regional environment is reached on its own host, ``model-{model_id}-{env_name}.api.baseten.co`` (a chain's
    ``chain-{chain_id}-{env_name}``), where the path names no target: so it needs ``environment=`` (a name that
    can be part of a host name), never ``deployment_id=`` and never ``"development"`` (a deployment, which has no
    regional host).
    """
    if deployment_id is not None:
        raise BasetenValidationError(
            f"{who}: regional=True addresses a regional environment by name; give environment= (e.g. 'prod-us'), "
            f"not deployment_id={deployment_id!r} (a deployment has no regional host).",
            field="deployment_id",
        )
    if environment is None or environment == "development":
        raise BasetenValidationError(
            f"{who}: regional=True needs environment= naming the regional environment (e.g. environment='prod-us'), "
            f"got environment={environment!r}.",
            field="environment",
        )
    if not isinstance(environment, str) or not _HOST_LABEL.fullmatch(environment):
        raise BasetenValidationError(
            f"{who}: regional environment {environment!r} cannot be part of a host name "
            "(model-{model_id}-{environment}.api.baseten.co): use lowercase letters, digits and inner hyphens.",
            field="environment",
        )


def model_apis_route(
    model: str | None,
    model_apis: bool | None,
    model_id: str | None,
    environment: str | None,
    deployment_id: str | None,
) -> bool:
    """Whether an OpenAI-compatible call goes to Model APIs; refuses an ambiguous or contradictory one.

    The rule (:mod:`airflow_provider_baseten.hooks._openai` explains it): Model APIs only with ``model_apis=True``
    (which needs ``model`` and no deployment target); ``model=`` alone, without ``model_id``, ``environment``,
    ``deployment_id`` or ``model_apis``, is a :class:`BasetenValidationError`; anything else is a deployment.

    The answer depends on the arguments only, never on the connection: the same DAG routes the same way on
    every connection. Here rather than in ``hooks/_openai.py`` because the OpenAI-compatible operators ask it
    when the DAG is parsed (see :func:`check_packing`).
    """
    flag("model_apis", model_apis, none_ok=True)
    given = [
        k
        for k, v in (("model_id", model_id), ("environment", environment), ("deployment_id", deployment_id))
        if v is not None
    ]
    if model_apis:
        if given:
            raise BasetenValidationError(
                f"model_apis=True sends the call to Baseten's shared Model APIs, which have no "
                f"{'/'.join(given)}: drop {', '.join(f'{k}=' for k in given)} or pass model_apis=False to "
                "call your deployment.",
                field="model_apis",
            )
        if not model:
            raise BasetenValidationError(
                "model_apis=True needs model= (the Model APIs model's name, e.g. 'deepseek-ai/DeepSeek-V4-Pro').",
                field="model",
            )
        return True
    if model is not None and model_apis is None and not given:
        raise BasetenValidationError(
            f"model={model!r} alone does not say where to send the call: pass model_apis=True to call Baseten's "
            f"shared Model APIs model {model!r}, or model_id= (or environment= / deployment_id= for the "
            f"connection's model) to call your deployment with {model!r} as its served model name. Nothing was "
            "sent.",
            field="model_apis",
        )
    return False


#: The keys of ``hook_params`` (and of the connection extra's ``timeouts`` / ``retry``): for each group
#: (``timeouts``: ``Timeouts``, ``retry``: ``RetryPolicy``, whose defaults apply to what is not given), its
#: fields and what each must be: ``"seconds"`` (> 0), ``"seconds or 0"`` (>= 0) or ``"attempts"`` (an
#: integer >= 1). Written out here, not read from those classes, so an operator checks ``hook_params`` at DAG
#: parse without importing httpx; ``tests/unit/test_hook_params.py`` keeps the two equal.
HOOK_PARAM_FIELDS: dict[str, dict[str, str]] = {
    "timeouts": {"connect": "seconds", "management_read": "seconds", "predict_read": "seconds"},
    "retry": {
        "max_attempts": "attempts",
        "backoff_base": "seconds or 0",
        "max_backoff": "seconds or 0",
        "max_retry_after": "seconds or 0",
        "total_timeout": "seconds",
    },
}


def _hook_value(name: str, kind: str, value: Any) -> float:
    if kind == "attempts":
        return int_in(name, value, 1)
    low_ok = kind == "seconds or 0"
    # Finite: the value travels to the triggerer as JSON, which has no infinity.
    if is_number(value) and math.isfinite(value) and (value > 0 or (low_ok and value == 0)):
        return float(value)
    raise _refuse(name, value, "a finite number of seconds " + (">= 0" if low_ok else "> 0"), "")


def hook_param_group(group: str, value: Any, where: str = "hook_params") -> dict[str, float]:
    """One group of hook settings (``timeouts`` or ``retry``): a dict of its fields to numbers, checked.

    ``where`` names where the value came from (``"hook_params"``, or ``"extra"`` for the connection's); the
    :class:`BasetenValidationError` names the bad key as ``field``, e.g. ``hook_params.timeouts.predict_read``.
    Returns a plain (JSON-safe) dict of what was given (``None``: ``{}``).
    """
    fields = HOOK_PARAM_FIELDS[group]
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _refuse(f"{where}.{group}", value, f"a dict with keys from {sorted(fields)}", "None")
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise BasetenValidationError(
            f"Unknown key {unknown[0]!r} in {where}.{group}; the keys are {sorted(fields)}.",
            field=f"{where}.{group}.{unknown[0]}",
        )
    return {key: _hook_value(f"{where}.{group}.{key}", fields[key], item) for key, item in value.items()}


class HookParams(TypedDict, total=False):
    """Checked ``hook_params``: the keyword arguments of ``BasetenHook`` they stand for."""

    timeouts: dict[str, float]
    retry: dict[str, float]


def hook_params(value: Any) -> HookParams:
    """``hook_params`` of an operator, sensor or trigger: ``{"timeouts": {...}, "retry": {...}}``, checked.

    ``timeouts`` keys: ``connect``, ``management_read``, ``predict_read`` (seconds); ``retry`` keys:
    ``max_attempts``, ``backoff_base``, ``max_backoff``, ``max_retry_after``, ``total_timeout`` (seconds). A key
    not given keeps the connection extra's value, else the default. Returns a plain (JSON-safe) dict without
    empty groups; raises :class:`BasetenValidationError` naming the bad key (``field``).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _refuse("hook_params", value, f"a dict with keys from {sorted(HOOK_PARAM_FIELDS)}", "None")
    unknown = [k for k in value if k not in HOOK_PARAM_FIELDS]
    if unknown:
        raise BasetenValidationError(
            f"Unknown key {unknown[0]!r} in hook_params; the keys are {sorted(HOOK_PARAM_FIELDS)}, e.g. "
            "hook_params={'timeouts': {'predict_read': 300}, 'retry': {'max_attempts': 3}}.",
            field=f"hook_params.{unknown[0]}",
        )
    checked = HookParams()
    timeouts, retry = hook_param_group("timeouts", value.get("timeouts")), hook_param_group("retry", value.get("retry"))
    if timeouts:
        checked["timeouts"] = timeouts
    if retry:
        checked["retry"] = retry
    return checked
