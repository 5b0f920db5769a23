"""A consumer DAG scheduled by a Baseten watcher (tests/e2e/test_asset_watch.py).

``baseten_on_new_production`` runs when production of model ``echo1234`` (the emulator's seeded model) starts
serving a different deployment; its one task returns the new deployment id from the trigger's payload.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, AssetWatcher, task

from airflow_provider_baseten.assets import environment_asset
from airflow_provider_baseten.triggers.watchers import EnvironmentChangedTrigger

MODEL = "echo1234"
POLL = 2.0  # seconds between the watcher's polls

production = environment_asset(
    MODEL,
    "production",
    watchers=[
        AssetWatcher(
            name="echo_production_changed",
            trigger=EnvironmentChangedTrigger(model_id=MODEL, environment="production", poll_interval=POLL),
        )
    ],
)

with DAG("baseten_on_new_production", schedule=[production], start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def new_deployment(triggering_asset_events: Any = None) -> str:
        """The deployment production now serves, from the watcher's event."""
        (event,) = triggering_asset_events[production]
        payload = event.extra["payload"]
        print(f"production of {payload['model_id']} now serves {payload['deployment_id']}: {payload}")
        return str(payload["deployment_id"])

    new_deployment()
