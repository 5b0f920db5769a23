"""DAGs that handle secrets the way a pipeline would, on each gateway: create an API key, log and print it
carelessly, store it as a secret, log a hook error, render a templated field from the connection (chaos
case 7 then searches everything Airflow kept for the keys)."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_baseten.operators.inference import PredictOperator

for conn_id, dag_id in (("baseten_default", "chaos_secrets"), ("baseten_gateway", "chaos_secrets__gateway")):
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["chaos"]) as dag:

        @task
        def create_key(conn_id: str = conn_id) -> str:
            """Create a key, log it every careless way, and return only its prefix."""
            import logging

            from airflow_provider_baseten.hooks.baseten import BasetenHook

            hook = BasetenHook(conn_id)
            created = hook.create_api_key("WORKSPACE_INVOKE", name=f"chaos-{conn_id}")
            # The test's oracle: where it finds the plaintext to search for (outside AIRFLOW_HOME).
            with open(os.environ["CHAOS_CREATED_KEY_FILE"], "a", encoding="utf-8") as fh:
                fh.write(created.api_key + "\n")
            logging.getLogger(__name__).debug("created %r / %s / %s", created, created, created.model_dump())
            print("plaintext printed by careless user code:", created.api_key)
            hook.upsert_secret("chaos_secret", created.api_key)
            keys = hook.list_api_keys()
            print("api keys:", keys, "settings:", hook.settings, "hook:", hook)
            return keys[-1].prefix

        @task
        def log_error(conn_id: str = conn_id) -> None:
            """An error raised from the hook (404) carries the request, never the key."""
            from airflow_provider_baseten.hooks.baseten import BasetenHook

            try:
                BasetenHook(conn_id).get_deployment("nosuchdep1")
            except Exception as exc:
                print("error text:", exc, repr(exc))

        @task
        def fail_with_error(conn_id: str = conn_id) -> None:
            """A task that fails on a hook error: the exception text lands in the log and the UI."""
            from airflow_provider_baseten.hooks.baseten import BasetenHook

            BasetenHook(conn_id).get_training_job("proj1234", "nosuchjob")

        predict = PredictOperator(
            task_id="predict_templated",
            baseten_conn_id=conn_id,
            model_input={"host": "{{ conn." + conn_id + ".host }}", "login": "{{ conn." + conn_id + ".login }}"},
        )
        create_key() >> log_error() >> predict >> fail_with_error()
