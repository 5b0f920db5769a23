"""One large batch spread over many Airflow workers: split -> mapped predict -> merge -> count check.

What it shows
-------------
1. ``split`` cuts the input (JSONL or Parquet, local or object storage) into shards of
   ``baseten_shard_rows`` rows, streaming (:func:`airflow_provider_baseten.batch.split_input`). Each shard
   records its global index range; a manifest ``shards.json`` lists them.
2. ``predict`` is one :class:`PredictOperator` per shard (``.partial(...).expand_kwargs(...)``). The
   executor runs the shards wherever it has free workers (Celery, Kubernetes, or the local executor's
   processes); ``max_active_tis_per_dagrun`` caps how many run at once, so size it to what the model can
   serve. Each shard writes its own ``output_path`` with ``resume=True``: a shard whose worker died is
   retried and sends only the inputs it has no result for. ``map_index_template`` names the shard in the
   UI (``part-00003``). ``scale_for_batch`` holds the deployment's ``min_replica`` up while shards run
   and gives it back when the last one ends (leases: see the README, "Scaling out").
3. ``merge`` joins the shard outputs into one file in input order, with global indices
   (:func:`airflow_provider_baseten.batch.merge_outputs`); it refuses a shard with a missing result.
4. ``check_counts`` reads the merged file back: one result per input, in order, and the error rate.

Configure it
------------
* Connection ``baseten_default`` (type Baseten): the API key, and the default ``model_id`` in the extras.
* Variables (or ``AIRFLOW_VAR_<NAME>`` environment variables), all optional:

  ``baseten_batch_input``
      Input JSONL (one model input per line) or Parquet (one input per row), local or ``s3://...``.
      Default ``/tmp/baseten/batch/input.jsonl``.
  ``baseten_sharded_work_dir``
      Where the shards, their outputs and ``predictions.jsonl`` go, in a folder per run. Default
      ``/tmp/baseten/sharded``.
  ``baseten_shard_rows``
      Inputs per shard. Default ``1000``.

* Environment, read when the file is parsed: ``BASETEN_EXAMPLE_MAX_SHARDS_AT_ONCE`` (default 4, the
  ``max_active_tis_per_dagrun``), ``BASETEN_EXAMPLE_SCALE_FOR_BATCH`` (the ``min_replica`` held during the
  batch, default 2; ``0`` turns it off), ``BASETEN_EXAMPLE_SHARD_CONCURRENCY`` (requests in flight per
  shard, default 32).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Variable, task

from airflow_provider_baseten.operators.inference import PredictOperator

INPUT = "{{ var.value.get('baseten_batch_input', '/tmp/baseten/batch/input.jsonl') }}"
# A folder per run, the same for every try of it (so a retried shard finds its earlier results).
RUN_DIR = (
    "{{ var.value.get('baseten_sharded_work_dir', '/tmp/baseten/sharded') }}/"
    "{{ (dag_run.logical_date or dag_run.run_after) | ts_nodash }}"
)
SHARD_ROWS = "{{ var.value.get('baseten_shard_rows', '1000') }}"
AT_ONCE = int(os.environ.get("BASETEN_EXAMPLE_MAX_SHARDS_AT_ONCE", "4"))
SCALE = int(os.environ.get("BASETEN_EXAMPLE_SCALE_FOR_BATCH", "2")) or None
CONCURRENCY = int(os.environ.get("BASETEN_EXAMPLE_SHARD_CONCURRENCY", "32"))


def shard_kwargs(shard: dict[str, Any]) -> dict[str, Any]:
    """A shard (from ``split``) as the arguments of its mapped ``PredictOperator``."""
    return {"model_inputs": shard["path"], "output_path": shard["output_path"]}


with DAG(
    dag_id="baseten_sharded_batch",
    description="One batch split into shards, predicted by mapped tasks on many workers, merged in order",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["baseten", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def split(path: str, run_dir: str, rows: str) -> list[dict[str, Any]]:
        """Cut the input into shards of ``rows`` inputs; each knows its global index range."""
        from airflow_provider_baseten.batch import split_input

        shards = split_input(path, f"{run_dir}/shards", rows_per_shard=int(rows))
        print(f"{shards[-1].stop:,} inputs in {len(shards)} shards of up to {int(rows):,}")
        return [s.as_dict() for s in shards]

    shards = split(INPUT, RUN_DIR, SHARD_ROWS)

    # [START howto_operator_predict_sharded]
    predict = PredictOperator.partial(
        task_id="predict",
        environment="production",
        max_concurrency=CONCURRENCY,
        on_error="record",  # failed items become {"index", "error"} lines; check_counts applies the budget
        resume=True,  # a retried shard (its worker died) sends only the inputs it has no result for
        scale_for_batch=SCALE,
        max_cost_usd=50.0,  # budget guard of each shard's lease: past $50 it stops sending, keeping what it wrote
        max_active_tis_per_dagrun=AT_ONCE,
        map_index_template="{{ task.model_inputs.rsplit('/', 1)[-1].split('.')[0] }}",
        progress_interval=5.0,
        execution_timeout=timedelta(hours=2),
    ).expand_kwargs(shards.map(shard_kwargs))
    # [END howto_operator_predict_sharded]

    @task
    def merge(shards: list[dict[str, Any]], run_dir: str) -> dict[str, Any]:
        """Join the shard outputs in input order, with global indices."""
        from airflow_provider_baseten.batch import merge_outputs

        dest = f"{run_dir}/predictions.jsonl"
        count = merge_outputs(shards, dest)
        print(f"{count:,} results merged into {dest}")
        return {"output_path": dest, "count": count, "shards": len(shards)}

    @task
    def check_counts(merged: dict[str, Any], shards: list[dict[str, Any]]) -> dict[str, Any]:
        """One result per input, in order; the error rate within ``baseten_batch_max_error_rate``."""
        from airflow_provider_baseten.batch import read_results

        expected = shards[-1]["stop"]
        lines = errors = 0
        for record in read_results(merged["output_path"]):
            if record["index"] != lines:
                raise ValueError(f"result {lines} holds index {record['index']}")
            lines += 1
            errors += "error" in record
        if lines != expected:
            raise ValueError(f"{lines:,} results for {expected:,} inputs")
        max_rate = float(Variable.get("baseten_batch_max_error_rate", default="0"))
        if errors > max_rate * lines:
            raise ValueError(f"{errors:,} of {lines:,} predictions failed (tolerated: {max_rate:.1%})")
        print(f"{lines:,} predictions from {len(shards)} shards, {errors} errors -> {merged['output_path']}")
        return {"predictions": lines, "errors": errors, "shards": len(shards), "output_path": merged["output_path"]}

    merged = merge(shards, RUN_DIR)
    predict >> merged
    check_counts(merged, shards)
