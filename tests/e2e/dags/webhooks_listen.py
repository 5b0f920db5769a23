"""AsyncPredictOperators that submit many requests and wait by listening (tests/e2e/test_webhooks.py):
``webhooks_listen`` (20,000 requests by default) and ``webhooks_kill`` (300: the API server is SIGKILLed while
their results are being delivered).

The webhook URL and the store both come from the ``baseten_webhooks`` connection: the receiver the provider's
plugin mounts on this Airflow's own API server (``/baseten-webhooks/``) reads the same connection. The number
of inputs comes from the Variable ``webhooks_e2e_requests``, read at parse time (the test sets it in the
environment of every component), so the inputs are in the DAG, not in an upstream task's XCom.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_baseten.operators.inference import AsyncPredictOperator

REQUESTS = int(os.environ.get("AIRFLOW_VAR_WEBHOOKS_E2E_REQUESTS", "20"))
KILL_REQUESTS = 300


def listening_task(requests: int, output: str) -> AsyncPredictOperator:
    """One task: submit ``requests`` inputs with the mounted receiver's URL, then listen to its store."""
    return AsyncPredictOperator(
        task_id="submit_and_listen",
        model_inputs=[{"i": i} for i in range(requests)],
        webhook_conn_id="baseten_webhooks",  # the URL of the receiver mounted on this API server
        wait_for_completion=True,
        deferrable=True,
        results_path="{{ conn.baseten_webhooks.extra_dejson.store }}",  # where the wait listens
        output_path=output,  # every output, in input order
        poke_interval=1.0,  # one listing of the store per second
    )


with DAG("webhooks_listen", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    listening_task(REQUESTS, "{{ var.value.webhooks_e2e_outputs }}/listen.jsonl")

with DAG("webhooks_kill", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    listening_task(KILL_REQUESTS, "{{ var.value.webhooks_e2e_outputs }}/kill.jsonl")
