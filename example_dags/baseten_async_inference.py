"""Async inference: queue a batch of requests on Baseten, get the outputs by webhook, wait by listening.

Baseten's async inference queues each request and POSTs the model's output to your webhook when it is
done; polling only ever returns the request's *status*. This DAG:

1. ``build_inputs`` makes the batch of model inputs (replace with your own source).
2. ``submit`` (:class:`AsyncPredictOperator`) validates every input, submits them with a webhook, a
   priority and a queue deadline, and pushes the request ids to XCom straight away. On Airflow 3.3+ a
   retried task reconnects to those requests instead of submitting them again.
3. ``wait_for_results`` (:class:`AsyncPredictSensor`, deferrable) hands the wait to the triggerer, which
   *listens*: it lists the webhook receiver's store (``results_path``) instead of polling Baseten's status
   API, so waiting costs no Baseten call. Only requests still missing after ``webhook_grace`` seconds of
   silence are asked about (within the 20 requests/s budget); a lost one (``WEBHOOK_FAILED``) is reported by
   its index. The outputs are gathered in input order into one JSONL file, like a batch.
4. ``report`` prints the gathered outputs' summary and first rows.

Configure it
------------
* Connection ``baseten_default`` (type Baseten): the API key and the default ``model_id``.
* Variables (or ``AIRFLOW_VAR_<NAME>`` environment variables):

  ``baseten_webhook_url``
      The receiver's public URL: the provider's receiver mounted on Airflow's API server
      (``https://<airflow>/baseten-webhooks/``) or run on its own (``python -m airflow_provider_baseten.webhooks``).
      (``AsyncPredictOperator(webhook_conn_id=...)`` builds it from a connection instead.)
  ``baseten_results_path``
      The receiver's store (its ``--store`` folder or ``s3://...`` URL), where the wait listens.
  ``baseten_async_output``
      Where the gathered outputs go (a ``.jsonl`` or ``.parquet`` path, local or object storage).
  ``baseten_async_batch_size``
      How many requests to submit. Default ``20``.

* ``BASETEN_EXAMPLE_POLL_SECONDS`` (environment): seconds between status rounds (default 10).
"""

from __future__ import annotations

import itertools
import os
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
    def webhook_url() -> str:
        """The receiver's URL, from the Variable."""
        return str(Variable.get("baseten_webhook_url"))

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
        results_path="{{ var.value.baseten_results_path }}",  # listen to the receiver's store
        output_path="{{ var.value.baseten_async_output }}",  # the outputs, in input order
        webhook_grace=60,  # ask Baseten only about results still missing after 60 s of silence
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=2 * 3600,
    )
    # [END howto_sensor_async_predict]

    @task
    def report(summary: dict) -> dict:
        """Print the gathered outputs: the summary, then the first rows of the file (input order)."""
        from airflow_provider_baseten.batch_io import read_results

        print(
            f"{summary['total']} async outputs gathered in {summary['output_path']}: {summary['succeeded']} "
            f"succeeded, {summary['failed']} failed"
        )
        for row in itertools.islice(read_results(summary["output_path"]), 3):
            print(row)
        return {k: summary[k] for k in ("total", "succeeded", "failed")}

    report(wait_for_results.output)
