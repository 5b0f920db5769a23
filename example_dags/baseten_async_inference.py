"""Async inference: queue a batch of requests on Baseten, get the outputs by webhook, wait deferred.

Baseten's async inference queues each request and POSTs the model's output to your webhook when it is
done; polling only ever returns the request's *status*. This DAG:

1. ``build_inputs`` makes the batch of model inputs (replace with your own source).
2. ``submit`` (:class:`AsyncPredictOperator`) validates every input, submits them with a webhook, a
   priority and a queue deadline, and pushes the request ids to XCom straight away. On Airflow 3.3+ a
   retried task reconnects to those requests instead of submitting them again.
3. ``wait_for_results`` (:class:`AsyncPredictSensor`, deferrable) hands the wait to the triggerer, which
   polls the statuses within Baseten's 20 requests/s budget. SUCCEEDED passes; FAILED, EXPIRED, CANCELED
   and WEBHOOK_FAILED (the output is lost) fail the task with Baseten's error codes.
4. ``report`` counts the final states.

Configure it
------------
* Connection ``baseten_default`` (type Baseten): the API key and the default ``model_id``.
* Variables (or ``AIRFLOW_VAR_<NAME>`` environment variables):

  ``baseten_webhook_url``
      Where Baseten delivers the outputs (an https URL your service receives). Without it the requests
      still run, but their outputs are dropped: Baseten only hands outputs to webhooks.
  ``baseten_async_batch_size``
      How many requests to submit. Default ``20``.

* ``BASETEN_EXAMPLE_POLL_SECONDS`` (environment): seconds between status rounds (default 10).
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timedelta

from airflow.sdk import DAG, Variable, task

from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.sensors.inference import AsyncPredictSensor

POLL_SECONDS = float(os.environ.get("BASETEN_EXAMPLE_POLL_SECONDS", "10"))

with DAG(
    dag_id="baseten_async_inference",
    description="Submit async predictions with a webhook and wait for them in the triggerer",
    schedule="@hourly",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["baseten", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def build_inputs() -> list[dict]:
        """One model input per document to process (here: generated)."""
        size = int(Variable.get("baseten_async_batch_size", default="20"))
        return [{"text": f"Document {i}: summarise me."} for i in range(size)]

    @task
    def webhook_url() -> str | None:
        """The webhook from the Variable, or ``None`` (outputs dropped) with a warning."""
        url = Variable.get("baseten_webhook_url", default="") or None
        if url is None:
            print("WARNING: no baseten_webhook_url Variable: the outputs of these requests will be dropped.")
        return url

    # [START howto_operator_async_predict]
    submit = AsyncPredictOperator(
        task_id="submit",
        model_inputs=build_inputs(),
        environment="production",
        webhook_endpoint=webhook_url(),
        priority=1,
        max_time_in_queue_seconds=3600,
        wait_for_completion=False,  # the sensor below waits, deferred
    )
    # [END howto_operator_async_predict]

    # [START howto_sensor_async_predict]
    wait_for_results = AsyncPredictSensor(
        task_id="wait_for_results",
        request_ids=submit.output,  # the ids, from XCom
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=2 * 3600,
    )
    # [END howto_sensor_async_predict]

    @task
    def report(states: dict[str, str]) -> dict[str, int]:
        """Log how many requests ended in each state (the outputs themselves went to the webhook)."""
        counts = dict(Counter(states.values()))
        print(f"{len(states)} async requests: {counts}")
        return counts

    report(wait_for_results.output)
