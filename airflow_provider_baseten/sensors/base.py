"""Public base class of the provider's sensors, for subclassing in your own sensors.

``BasetenTriggerSensor`` pokes with a Baseten trigger's ``check()`` (or defers to that trigger), so poke
and deferral agree. It is defined in the private ``sensors._base`` (whose import path keeps working); this
module is its stable public home.
"""

from __future__ import annotations

from airflow_provider_baseten.sensors._base import BasetenTriggerSensor

__all__ = ["BasetenTriggerSensor"]
