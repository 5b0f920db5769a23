"""The provider's ``[baseten]`` section of Airflow's configuration: defaults users tune once for all DAGs.

Declared in :func:`airflow_provider_baseten.get_provider_info` (``config``), so ``airflow config list`` and
``airflow providers get airflow-provider-baseten --full`` show it; set with ``airflow.cfg`` or
``AIRFLOW__BASETEN__<OPTION>`` environment variables. A value given to an operator or trigger always wins;
the config is only the default. Read when an operator or trigger is built (in the worker), never at import.
"""

from __future__ import annotations

from typing import Any

SECTION = "baseten"
POLL_INTERVAL = "poll_interval"
STATUS_BUDGET_RPS = "status_budget_rps"
DEFAULT_TIMEOUT = "default_timeout"
#: ``[baseten] default_timeout`` when unset: one day.
DEFAULT_TIMEOUT_SECONDS = 86400.0

#: The ``config`` entry of the provider info (schema: Airflow's ``provider_info.schema.json``). Every option
#: carries ``description``, ``version_added``, ``type``, ``example`` and ``default``; descriptions are
#: wrapped (``\n``) because ``airflow config list`` prints each line as a ``#`` comment, as it does
#: Airflow's own options. ``airflow config list --section baseten --defaults --show-values`` shows them all.
CONFIG: dict[str, Any] = {
    SECTION: {
        "description": "Defaults of the Baseten provider (airflow-provider-baseten).\n"
        "An argument given to an operator, sensor or trigger always wins over these.",
        "options": {
            POLL_INTERVAL: {
                "description": "Seconds between status checks of the provider's waiting operators (promote,\n"
                "activate, deactivate, wake, deploy, async predict, training jobs) and sensors when a\n"
                "task gives no poke_interval.\n"
                "Unset (the default): each operator and sensor keeps its own default_poke_interval,\n"
                "given in its docs.",
                "version_added": "0.1.0",
                "type": "float",
                "example": "30",
                "default": None,
            },
            DEFAULT_TIMEOUT: {
                "description": "Seconds a waiting operator or sensor of the provider may wait, per try, when\n"
                "the task gives no timeout (or timeout=None). The deadline of a try is\n"
                "min(start + timeout, start + execution_timeout). At it the task fails with\n"
                "BasetenTimeoutError: an operator is retried per its retries; a sensor is not\n"
                "(BasetenSensorTimeout is an AirflowSensorTimeout; soft_fail skips it).",
                "version_added": "0.1.0",
                "type": "float",
                "example": "3600",
                "default": "86400",
            },
            STATUS_BUDGET_RPS: {
                "description": "Async status and cancel calls per second, per model and connection, shared\n"
                "by every trigger and sensor in one process (Baseten allows 20 per model).",
                "version_added": "0.1.0",
                "type": "float",
                "example": "10",
                "default": "20",
            },
        },
    }
}


def get_float(option: str, fallback: float | None) -> float | None:
    """``[baseten] option`` as a positive float; ``fallback`` when unset or empty.

    :raises ValueError: naming the option and the environment variable, when the value is not a positive number.
    """
    from airflow.providers.common.compat.sdk import conf

    raw = conf.get(SECTION, option, fallback=None)
    if raw is None or str(raw).strip() == "":
        return fallback
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(
            f"[{SECTION}] {option} (AIRFLOW__{SECTION.upper()}__{option.upper()}) must be a positive number "
            f"of seconds or calls per second, got {str(raw)[:50]!r}."
        )
    return value


def poll_interval(default: float) -> float:
    """The default seconds between status checks: ``[baseten] poll_interval``, else ``default``."""
    value = get_float(POLL_INTERVAL, default)
    return default if value is None else value


def default_timeout() -> float:
    """The default ``timeout`` of the waiting operators and sensors: ``[baseten] default_timeout``, else one day."""
    value = get_float(DEFAULT_TIMEOUT, DEFAULT_TIMEOUT_SECONDS)
    return DEFAULT_TIMEOUT_SECONDS if value is None else value


def status_budget_rps(default: float) -> float:
    """The per-model async status budget: ``[baseten] status_budget_rps``, else ``default``."""
    value = get_float(STATUS_BUDGET_RPS, default)
    return default if value is None else value
