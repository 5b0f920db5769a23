"""Public base class of the provider's sensors, for subclassing in your own sensors, and their timeout.

``BasetenTriggerSensor`` pokes with a Baseten trigger's ``check()`` (or defers to that trigger), so poke
and deferral agree. It is defined in the private ``sensors._base`` (whose import path keeps working); this
module is its stable public home. ``BasetenSensorTimeout`` is what a sensor raises at its deadline: a
``BasetenTimeoutError`` that is also Airflow's ``AirflowSensorTimeout`` (not retried; ``soft_fail`` skips).
"""

from __future__ import annotations

from airflow_provider_baseten.sensors._base import BasetenSensorTimeout, BasetenTriggerSensor

__all__ = ["BasetenSensorTimeout", "BasetenTriggerSensor"]
