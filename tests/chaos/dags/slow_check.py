"""The slow-check deadline in a real Airflow (tests/chaos/test_slow_check_deadline.py): a deferred async
wait whose status reads turn slow just before its 20 s deadline (the test sets the emulator's fault)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_baseten.operators.inference import AsyncPredictOperator

with DAG("slow_check", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as slow_check:
    AsyncPredictOperator(
        task_id="async_slow_check",
        model_inputs=[{"case": "slow-check", "i": i} for i in range(3)],
        wait_for_completion=True,
        deferrable=True,
        poke_interval=2,
        timeout=20,
        retries=0,
    )
