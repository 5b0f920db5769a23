"""Run an in-memory DAG with ``dag.test()``: a migrated metadata DB and the DAG serialized into it first.

Airflow 3 refuses ``dag.test()`` for a DAG the DAG processor never serialized ("Cannot create DagRun ...
because the dag is not serialized"), which is every DAG defined inside a test function. :func:`run_dag` does
what the scheduler's side would have done: migrate the DB once, serialize the DAG, then ``dag.test()``.
Airflow is imported only when these functions run, so loading the pytest plugin stays cheap.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_migrated: set[str] = set()  # the DB URLs this process has migrated (or found migrated)


def ensure_db() -> None:
    """Migrate the configured metadata DB once per process and per set of installed Airflow distributions.

    A migration costs 5-15 s of CPU, so a new SQLite file in ``AIRFLOW_HOME`` is copied from a migrated template
    kept in the virtualenv, one per set of installed Airflow distributions (the schema's only inputs); other
    runs and pytest-xdist workers start from it. An existing DB, or another database URL, is migrated in place
    (``airflow db migrate``, in a subprocess so this process's Airflow state stays clean), once per schema: a
    marker file in ``AIRFLOW_HOME`` remembers it.
    """
    from airflow.configuration import AIRFLOW_HOME, conf

    conn = conf.get("database", "sql_alchemy_conn")
    if conn in _migrated:
        return
    home = Path(AIRFLOW_HOME)
    marker = home / f".baseten-migrated-{_schema_key()}-{hashlib.sha256(conn.encode()).hexdigest()[:8]}"
    if not marker.exists():
        db = home / "airflow.db"
        if conn == f"sqlite:///{db}" and not db.exists():  # never overwrite a DB that holds someone's data
            home.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_migrated_template(), db)
        else:
            _migrate(conn)
        marker.touch()
    _migrated.add(conn)


def _migrated_template() -> Path:
    """The migrated DB kept for these Airflow distributions, made by the first process that needs it."""
    keep = Path(sys.prefix) if os.access(sys.prefix, os.W_OK) else Path(tempfile.gettempdir())  # the virtualenv
    template = keep / f"baseten-test-airflow-{_schema_key()}.db"
    with open(template.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process migrates; the others wait here, then copy its file
        if not template.exists():
            Path(f"{template}.part").unlink(missing_ok=True)  # left by a run killed mid-migration
            _migrate(f"sqlite:///{template}.part")
            os.replace(f"{template}.part", template)
    return template


def _schema_key() -> str:
    """What the migrated schema depends on: the installed Airflow distributions and their versions."""
    names = sorted(
        f"{d.metadata['Name']}=={d.version}"
        for d in importlib.metadata.distributions()
        if d.metadata["Name"].lower().startswith("apache-airflow")
    )
    return hashlib.sha256(" ".join(names).encode()).hexdigest()[:16]


def _migrate(conn: str) -> None:
    airflow = Path(sys.executable).parent / "airflow"
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn}
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=env)


def sync_dag(dag: Any) -> None:
    """Serialize an in-memory DAG into the metadata DB, as the DAG processor would for a file.

    :param dag: the ``airflow.sdk.DAG`` to serialize.
    """
    from airflow.configuration import conf
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:  # Airflow >= 3.2
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[no-redef,attr-defined,unused-ignore]

    Path(conf.get("core", "dags_folder")).mkdir(parents=True, exist_ok=True)  # the "dags-folder" bundle's root
    DagBundlesManager().sync_bundles_to_db()  # type: ignore[no-untyped-call,unused-ignore]
    wanted: dict[str, Any] = {"dag_folder": os.devnull, "include_examples": False, "collect_dags": False}
    accepted = inspect.signature(DagBag.__init__).parameters  # the signature differs across 3.x
    bag = DagBag(**{k: v for k, v in wanted.items() if k in accepted})
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """``dag.test()`` an in-memory DAG (defined anywhere, not only in the DAGs folder) and return the DagRun.

    :param dag: the ``airflow.sdk.DAG`` to run.
    :param kwargs: passed to ``dag.test()`` (e.g. ``run_conf``, ``logical_date``).
    :return: the finished DagRun; check its task instances' states, e.g.
        ``run.get_task_instance("predict").state == "success"``.
    """
    ensure_db()
    sync_dag(dag)
    return dag.test(**kwargs)
