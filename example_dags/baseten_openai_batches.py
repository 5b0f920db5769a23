# Markers (Sphinx exampleinclude): howto_operator_embeddings, howto_operator_chat_completions
"""OpenAI-compatible batches to Parquet: embed a table of documents, and summarise each one with an LLM.

What it shows
-------------
1. ``embed`` (:class:`EmbeddingsOperator`) reads the ``text`` column of a Parquet file of documents,
   packs ``batch_size`` texts per request to your embedding model's deployment (its OpenAI-compatible
   ``/sync/v1/embeddings`` route), and writes one row per document, in input order, to a Parquet file.
   With ``cache=`` a text embedded by an earlier run (by the same deployment, with the same options) is
   read from the cache folder instead of being sent again.
2. ``build_requests`` turns each document into a chat request (``{"messages": [...]}``, one JSON line each).
3. ``summarise`` (:class:`ChatCompletionsOperator`) sends those requests to Baseten's shared Model APIs
   (``model_apis=True``: no deployment of yours) and writes the completions to a Parquet file.
4. ``check_outputs`` reads both files back: one row per document, in order, with its ``id``, none failed.

Both batches have the options of :class:`PredictOperator`: ``max_concurrency``, ``on_error``, the error
budget, and ``output_path`` + ``resume`` (a retried task sends only what has no result yet). With an
``output_path`` the task returns a summary (counts and the summed token ``usage``), not the outputs.

Configure it
------------
* Connection ``baseten_default`` (type Baseten, direct API): the API key, and the default ``model_id``: an
  embedding model (for example a Baseten Embeddings Inference deployment).
* Variables (or ``AIRFLOW_VAR_<NAME>`` environment variables), all optional:

  ``baseten_documents``
      A Parquet file with a ``text`` column (and any others, e.g. ``id``): a local path or ``s3://...``.
      Default ``/tmp/baseten/openai/documents.parquet``.
  ``baseten_openai_output_dir``
      Where ``embeddings-<date>.parquet``, ``requests-<date>.jsonl`` and ``summaries-<date>.parquet`` go.
      Default ``/tmp/baseten/openai/output``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from airflow_provider_baseten.operators.openai import ChatCompletionsOperator, EmbeddingsOperator

DOCUMENTS = "{{ var.value.get('baseten_documents', '/tmp/baseten/openai/documents.parquet') }}"
OUTPUT_DIR = "{{ var.value.get('baseten_openai_output_dir', '/tmp/baseten/openai/output') }}"
DAY = "{{ dag_run.run_after | ds }}"  # run_after: a manually triggered run may have no logical date
CHAT_MODEL = "deepseek-ai/DeepSeek-V4-Pro"  # a Model APIs model (see Baseten's Model APIs page)

with DAG(
    dag_id="baseten_openai_batches",
    description="Embed and summarise a Parquet table of documents, results to Parquet",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["baseten", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_embeddings]
    embed = EmbeddingsOperator(
        task_id="embed",
        texts=DOCUMENTS,  # a Parquet file: read by row group, every text checked before anything is sent
        text_column="text",
        environment="production",  # the connection's model; or model_id= / deployment_id=
        batch_size=64,  # texts per request
        max_concurrency=8,
        passthrough_columns=["id"],  # carried from each input row to its output row
        output_path=OUTPUT_DIR + "/embeddings-" + DAY + ".parquet",  # output: a list<float32> vector column
        cache=OUTPUT_DIR + "/embeddings-cache",  # tomorrow's run sends only the texts that changed
    )
    # [END howto_operator_embeddings]

    @task
    def build_requests(documents: str, output_dir: str, day: str) -> str:
        """One chat request per document, as JSON lines (a file scales where an XCom list does not)."""
        import pyarrow.parquet as pq

        os.makedirs(output_dir, exist_ok=True)
        path = f"{output_dir}/requests-{day}.jsonl"
        rows = pq.read_table(documents, columns=["id", "text"]).to_pylist()
        with open(path, "w", encoding="utf-8") as fh:
            for row in rows:
                messages = [
                    {"role": "system", "content": "Summarise the user's text in one sentence."},
                    {"role": "user", "content": row["text"]},
                ]
                fh.write(json.dumps({"id": row["id"], "messages": messages}) + "\n")
        print(f"{len(rows):,} chat requests in {path}")
        return path

    # [START howto_operator_chat_completions]
    summarise = ChatCompletionsOperator(
        task_id="summarise",
        requests=build_requests(DOCUMENTS, OUTPUT_DIR, DAY),  # a JSONL path, from XCom
        model_apis=True,  # Baseten's shared Model APIs, not a deployment of yours
        model=CHAT_MODEL,
        options={"max_tokens": 64, "temperature": 0.2},  # OpenAI fields sent with every request
        max_concurrency=16,
        passthrough_columns=["id"],  # kept in the output, not sent: a chat request's body has a fixed schema
        output_path=OUTPUT_DIR + "/summaries-" + DAY + ".parquet",
    )
    # [END howto_operator_chat_completions]

    @task
    def check_outputs(documents: str, embedded: dict, summarised: dict) -> dict:
        """Each output has one row per document, in order, and none failed."""
        import pyarrow.parquet as pq

        ids = pq.read_table(documents, columns=["id"]).column("id").to_pylist()
        expected = len(ids)
        report = {}
        for name, summary in (("embeddings", embedded), ("summaries", summarised)):
            table = pq.read_table(summary["output_path"])
            failed = table.num_rows - table.column("error").null_count
            if table.num_rows != expected or failed:
                raise ValueError(f"{name}: {table.num_rows:,} rows for {expected:,} documents, {failed} failed")
            if table.column("index").to_pylist() != list(range(expected)) or table.column("id").to_pylist() != ids:
                raise ValueError(f"{name}: rows out of input order, or ids not carried through")
            report[name] = {"rows": table.num_rows, "columns": table.column_names, "usage": summary.get("usage")}
            print(f"{name}: {table.num_rows:,} rows, columns {table.column_names} -> {summary['output_path']}")
        return report

    check_outputs(DOCUMENTS, embed.output, summarise.output)
