"""Scheduled batch inference: score a JSONL file of inputs on a Baseten model every day.

What it shows
-------------
1. ``check_inputs`` counts the input lines (and fails early on an empty or missing file).
2. ``wake_deployment`` (:class:`WakeDeploymentOperator`) wakes a scaled-to-zero deployment and waits until
   it is ACTIVE, so the batch does not pay the cold start request by request.
3. ``predict`` (:class:`PredictOperator`) streams the JSONL through the model with bounded concurrency,
   logs progress (done/total, rate, ETA, errors) every few seconds, and writes one result line per input,
   in input order, to a JSONL file: ``{"index": i, "output": ...}`` or ``{"index": i, "error": ...}``.
   Memory stays flat however large the file; only a small summary goes to XCom.
4. ``check_counts`` reads the output back and fails the run if a line is missing or too many failed.

Configure it
------------
* Connection ``baseten_default`` (type Baseten): the API key, and the default ``model_id`` in the extras.
* Variables (or ``AIRFLOW_VAR_<NAME>`` environment variables), all optional:

  ``baseten_batch_input``
      Input JSONL, one model input per line: a local path or an object-storage URI (``s3://...``).
      Default ``/tmp/baseten/batch/input.jsonl``.
  ``baseten_batch_output_dir``
      Where ``predictions-<run date>.jsonl`` is written. Default ``/tmp/baseten/batch/output``.
  ``baseten_batch_max_error_rate``
      The share of failed items tolerated before ``check_counts`` fails the run. Default ``0``.

* ``BASETEN_EXAMPLE_POLL_SECONDS`` (environment): seconds between status checks while waking (default 10).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Variable, task

from airflow_provider_baseten.operators.inference import PredictOperator, WakeDeploymentOperator

POLL_SECONDS = float(os.environ.get("BASETEN_EXAMPLE_POLL_SECONDS", "10"))
INPUT = "{{ var.value.get('baseten_batch_input', '/tmp/baseten/batch/input.jsonl') }}"
OUTPUT_DIR = "{{ var.value.get('baseten_batch_output_dir', '/tmp/baseten/batch/output') }}"

with DAG(
    dag_id="baseten_batch_inference",
    description="Daily batch predictions from a JSONL file, written to a JSONL file",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["baseten", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def check_inputs(path: str, output_dir: str) -> int:
        """Count the inputs, and make sure the output folder exists."""
        if "://" not in output_dir:
            os.makedirs(output_dir, exist_ok=True)
        if "://" in path:  # object storage: let PredictOperator read (and validate) it
            return -1
        with open(path, encoding="utf-8") as fh:
            count = sum(1 for line in fh if line.strip())
        if count == 0:
            raise ValueError(f"{path} has no inputs")
        print(f"{count:,} inputs in {path}")
        return count

    expected = check_inputs(INPUT, OUTPUT_DIR)

    # [START howto_operator_wake_deployment]
    # Wake the production deployment and wait (deferred, when the triggerer is available) until ACTIVE.
    wake = WakeDeploymentOperator(
        task_id="wake_deployment",
        environment="production",
        poke_interval=POLL_SECONDS,
        timeout=20 * 60,
    )
    # [END howto_operator_wake_deployment]

    # [START howto_operator_predict]
    predict = PredictOperator(
        task_id="predict",
        model_inputs=INPUT,  # a JSONL path (or ObjectStoragePath URI): streamed, every line checked first
        environment="production",
        max_concurrency=64,
        on_error="record",  # keep going; failed items are written as {"index", "error"}
        # Named by the day the run is for; run_after because a manually triggered run may have no logical date.
        output_path=OUTPUT_DIR + "/predictions-{{ dag_run.run_after | ds }}.jsonl",
        progress_interval=5.0,
        execution_timeout=timedelta(hours=2),
    )
    # [END howto_operator_predict]

    @task
    def check_counts(summary: dict, expected: int) -> dict:
        """Every input has exactly one result line, in order, and the error rate is acceptable."""
        path = summary["output_path"]
        lines = errors = 0
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                record = json.loads(raw)
                if record["index"] != lines:
                    raise ValueError(f"{path}: line {lines + 1} holds index {record['index']}")
                lines += 1
                errors += "error" in record
        if expected >= 0 and lines != expected:
            raise ValueError(f"{path}: {lines:,} results for {expected:,} inputs")
        max_rate = float(Variable.get("baseten_batch_max_error_rate", default="0"))
        if errors > max_rate * lines:
            raise ValueError(f"{errors:,} of {lines:,} predictions failed (tolerated: {max_rate:.1%})")
        report = {
            "predictions": lines,
            "errors": errors,
            "elapsed_seconds": summary["elapsed_seconds"],
            "output_path": path,
        }
        print(f"{lines:,} predictions, {errors} errors, in {summary['elapsed_seconds']:.1f} s -> {path}")
        return report

    expected >> wake >> predict
    check_counts(predict.output, expected)
