"""``make ui-check`` only: a task that recorded a 100,000-step loss series for the training job the
example trained (as a training task with the loss gate records it), so the tab's load time is measured on a
real API server."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, task

with DAG(dag_id="ui_check_long_series", schedule=None, start_date=datetime(2025, 1, 1), catchup=False):

    @task
    def long_series(**context: object) -> None:
        from airflow_provider_baseten import xcom
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        path = os.environ["UI_CHECK_SERIES"]
        with open(path, "w") as fh:
            fh.write("step,loss,epoch\n")
            fh.writelines(f"{i},{2.0 / (1 + i / 1000.0)!r},\n" for i in range(100_000))
        hook = BasetenHook("baseten_default")
        # the job the training example ran (the only project with a job)
        project, job = next(
            (p, jobs[0]) for p in hook.list_training_projects() if (jobs := hook.list_training_jobs(p.id))
        )
        ti = context["ti"]
        ti.xcom_push(key=xcom.CONN_ID, value="baseten_default")  # type: ignore[attr-defined]
        ti.xcom_push(key=xcom.TRAINING_PROJECT_ID, value=project.id)  # type: ignore[attr-defined]
        ti.xcom_push(key=xcom.TRAINING_JOB_ID, value=job.id)  # type: ignore[attr-defined]
        ti.xcom_push(key="baseten_loss", value={"series_path": path, "steps": 100_000})  # type: ignore[attr-defined]

    long_series()
