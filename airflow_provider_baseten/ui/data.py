"""What the Baseten pages show, gathered from what a task recorded (XCom, task state) and, through the
task's own connection, from Baseten via the hook. Nothing here renders HTML, and nothing is stored.

Every list is bounded: a page is built from at most :data:`MAX_LOG_PAGES` log pages, :data:`MAX_POINTS`
chart points, :data:`MAX_FAILED` failed batch items and :data:`MAX_ROWS` table rows.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from airflow_provider_baseten import xcom

if TYPE_CHECKING:
    from airflow_provider_baseten.loss import LossPoint

#: Chart points sent to the browser: a 100,000-step loss series is down-sampled on the server to this many.
MAX_POINTS = 2000
#: A saved loss series larger than this is not read (a 100,000-step series is about 2 MB): the path comes from an
#: XCom, so it must not make the API server read an unbounded file.
MAX_SERIES_BYTES = 32 * 1024 * 1024
#: Log pages (of ``LOG_PAGE`` lines) read from Baseten to build one training tab.
MAX_LOG_PAGES = 20
#: Log lines per page (Baseten's maximum).
LOG_PAGE = 1000
#: ERROR lines shown for a training job.
MAX_ERROR_LINES = 20
#: Failed batch items (with their errors) shown.
MAX_FAILED = 100
#: Rows of any other table (checkpoints, async requests, models, jobs).
MAX_ROWS = 100
#: Bytes of a batch output file read to find the failed items' errors.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024

#: XCom keys other work of this round adds to :mod:`airflow_provider_baseten.xcom` (the loss gate's summary,
#: the cost report); named here until those land, then read from there.
LOSS_KEY, COST_KEY = "baseten_loss", "baseten_cost"

TRAINING, DEPLOY, BATCH, ASYNC, OTHER = "training", "deploy", "batch", "async", "other"


@dataclass
class TaskRecord:
    """What Airflow recorded about one task instance: its operator, state and XComs (key -> value).

    :param dag_id: The Dag.
    :param run_id: The Dag run.
    :param task_id: The task.
    :param map_index: The map index (-1: not mapped).
    :param operator: The operator's class name, as the task instance records it.
    :param state: The task instance's state.
    :param xcoms: The task instance's XComs, by key.
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    operator: str | None = None
    state: str | None = None
    xcoms: dict[str, Any] = field(default_factory=dict)

    @property
    def conn_id(self) -> str | None:
        """The Baseten connection the task used (recorded by the provider's operators), else ``None``."""
        value = self.xcoms.get(xcom.CONN_ID)
        return value if isinstance(value, str) and value else None


def task_kind(record: TaskRecord) -> str:
    """Which tab a task gets, from what it recorded: ``training``, ``deploy``, ``batch``, ``async`` or ``other``."""
    x = record.xcoms
    if x.get(xcom.TRAINING_JOB_ID):
        return TRAINING
    if x.get(xcom.REQUEST_IDS) is not None:
        return ASYNC
    if _batch_summary(x.get("return_value")) is not None:
        return BATCH
    if x.get(xcom.DEPLOYMENT_ID) or x.get(xcom.MODEL_URL):
        return DEPLOY
    return OTHER


def _batch_summary(value: Any) -> Mapping[str, Any] | None:
    """The summary a file-backed batch returns (``total``, ``succeeded``, ``failed``, ...), else ``None``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, Mapping) and {"total", "succeeded", "failed"} <= value.keys():
        return value
    return None


# -- the loss curve ---------------------------------------------------------------------------------------
def loss_series(lines: Iterable[str]) -> list[LossPoint]:
    """The loss points of log lines, as the training wait reads them (:class:`~airflow_provider_baseten.loss.LossTracker`)."""
    from airflow_provider_baseten.loss import LossTracker

    tracker = LossTracker(max_points=MAX_POINTS)  # bounded: it thins the series as it grows
    tracker.feed_lines(lines)
    return tracker.points


def _path(value: str) -> Any:
    """A local path or an object-storage URI, as something with ``.open()``."""
    from airflow_provider_baseten.batch_io import as_path

    path = as_path(value)
    return Path(path) if isinstance(path, str) else path


class _Point(NamedTuple):
    """A series point read from a file: what :func:`~airflow_provider_baseten.loss.downsample` reads (``step``, ``loss``), built 5x
    faster than a ``LossPoint``, which keeps a 100,000-point tab under a second."""

    step: int
    loss: float


def series_from_file(path: str) -> list[LossPoint]:
    """The series a training task saved (``baseten_loss``'s ``series_path``: the CSV ``write_series`` writes).

    Parsed with ``str.split`` rather than the csv module (the file holds only numbers), 3x faster.
    """
    with _path(path).open("r") as handle:
        text = handle.read(MAX_SERIES_BYTES + 1)
    if len(text) > MAX_SERIES_BYTES:
        raise ValueError(f"the saved loss series is over {MAX_SERIES_BYTES} bytes")
    lines = text.splitlines()
    if not lines:
        return []
    header = lines[0].split(",")
    step, loss = header.index("step"), header.index("loss")
    points = []
    for line in lines[1:]:
        if line:
            cells = line.split(",")
            points.append(_Point(int(cells[step]), float(cells[loss])))
    return cast("list[LossPoint]", points)  # duck-typed LossPoints: the chart reads only step and loss


@functools.lru_cache(maxsize=16)
def _file_chart(path: str, stamp: tuple[int, float]) -> dict[str, Any]:
    return chart_points(series_from_file(path))


def file_chart(path: str) -> dict[str, Any]:
    """:func:`chart_points` of a saved series, cached per file version (a finished job's file never changes,
    and a tab is opened again and again)."""
    target = _path(path)
    try:
        info = target.stat()
        stamp = (int(info.st_size), float(info.st_mtime)) if hasattr(info, "st_size") else (0, 0.0)
    except (OSError, AttributeError, TypeError):
        stamp = (0, 0.0)
    if stamp == (0, 0.0):
        return chart_points(series_from_file(path))  # unknown version: never cached
    return _file_chart(path, stamp)


def chart_points(points: list[LossPoint], total: int | None = None) -> dict[str, Any]:
    """At most :data:`MAX_POINTS` finite points for the chart (first and last kept), and how many there were.

    :param points: The series.
    :param total: How many points the series had before any thinning (default ``len(points)``).
    """
    from airflow_provider_baseten.loss import downsample

    finite = [p for p in points if math.isfinite(p.loss)]
    shown = downsample(finite, MAX_POINTS) if len(finite) > MAX_POINTS else finite
    return {"steps": [p.step for p in shown], "loss": [p.loss for p in shown], "total": total or len(finite)}


# -- what each kind of tab shows --------------------------------------------------------------------------
def _log_lines(fetch: Callable[..., list[Any]]) -> Iterator[Any]:
    """Up to :data:`MAX_LOG_PAGES` pages of log lines, oldest first, paging on the last line's time."""
    start: int | None = None
    for _ in range(MAX_LOG_PAGES):
        page = fetch(start_epoch_millis=start, limit=LOG_PAGE)
        yield from page
        if len(page) < LOG_PAGE:
            return
        last = page[-1].epoch_millis
        if last is None:
            return
        start = last + 1


def _jsonable(model: Any) -> Any:
    return model.model_dump(mode="json") if hasattr(model, "model_dump") else model


def training_view(record: TaskRecord, hook: Any) -> dict[str, Any]:
    """The training tab: the job, its loss curve, GPU metrics, checkpoints, cost so far and last ERROR lines."""
    x = record.xcoms
    project, job_id = str(x.get(xcom.TRAINING_PROJECT_ID) or ""), str(x[xcom.TRAINING_JOB_ID])
    job = hook.get_training_job(project, job_id)
    loss_record = x.get(LOSS_KEY) if isinstance(x.get(LOSS_KEY), Mapping) else None
    lines = list(
        _log_lines(
            lambda **kw: hook.get_training_job_logs(project, job_id, **kw)  # one bounded page per call
        )
    )
    chart = None
    if loss_record and loss_record.get("series_path"):
        try:
            chart = file_chart(str(loss_record["series_path"]))
        except (OSError, ValueError, IndexError, UnicodeDecodeError):
            # Not readable here (a worker's local file, too big, not a series): the loss from the job's logs.
            chart = None
    if chart is None:
        chart = chart_points(loss_series(line.message for line in lines))
    errors = [line.format() for line in lines if (line.level or "").upper() == "ERROR"][-MAX_ERROR_LINES:]
    metrics = _gpu_metrics(_jsonable(hook.get_training_job_metrics(project, job_id)))
    checkpoints = [_jsonable(c) for c in hook.get_training_job_checkpoints(project, job_id)[:MAX_ROWS]]
    return {
        "job": _jsonable(job),
        "url": x.get(xcom.TRAINING_JOB_URL),
        "chart": chart,
        "loss_summary": loss_record,
        "gpu": metrics,
        "checkpoints": checkpoints,
        "errors": errors,
        "cost": x.get(COST_KEY),
        "timeline": _timeline(x),
    }


def _gpu_metrics(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per node and GPU: the latest utilisation (0-1) and memory in use (bytes), from the metrics endpoint."""
    out: list[dict[str, Any]] = []
    for node in (metrics.get("per_node_metrics") or [])[:MAX_ROWS]:
        values = node.get("metrics") or {}
        util, mem = values.get("gpu_utilization") or {}, values.get("gpu_memory_usage_bytes") or {}
        for gpu in sorted(set(util) | set(mem)):
            out.append(
                {
                    "node": node.get("node_id"),
                    "gpu": gpu,
                    "utilization": _latest(util.get(gpu)),
                    "memory_bytes": _latest(mem.get(gpu)),
                }
            )
    return out


def _latest(series: Any) -> float | None:
    if isinstance(series, list) and series and isinstance(series[-1], Mapping):
        value = series[-1].get("value")
        return float(value) if isinstance(value, (int, float)) else None
    return None


def deploy_view(record: TaskRecord, hook: Any) -> dict[str, Any]:
    """The deploy/promote tab: the deployment's status, its environment (before and after) and autoscaling."""
    x = record.xcoms
    deployment_id = x.get(xcom.DEPLOYMENT_ID)
    model_id = x.get(xcom.MODEL_ID) or _model_from_url(x.get(xcom.MODEL_URL))
    deployment = hook.get_deployment(deployment_id, model_id=model_id) if deployment_id else None
    environment = None
    env_name = deployment.environment if deployment is not None else None
    if env_name and model_id:
        environment = _jsonable(hook.get_environment(env_name, model_id=model_id))
    return {
        "model_id": model_id,
        "deployment": _jsonable(deployment) if deployment is not None else None,
        "environment": environment,
        "before": x.get(xcom.PREVIOUS_DEPLOYMENT_ID),
        "timeline": _timeline(x),
        "url": x.get(xcom.DEPLOYMENT_URL) or x.get(xcom.MODEL_URL),
    }


def _timeline(xcoms: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The statuses the task's wait saw (XCom ``baseten_status_timeline``), as ``{at (ISO UTC), status, percent}``."""
    from datetime import datetime, timezone

    out = []
    for entry in list(xcoms.get(xcom.STATUS_TIMELINE) or [])[:MAX_ROWS]:
        if not isinstance(entry, Mapping):
            continue
        at = entry.get("at")
        when = (
            datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds")
            if isinstance(at, (int, float))
            else ""
        )
        out.append({"at": when, "status": str(entry.get("status")), "percent": entry.get("percent")})
    return out


def _model_from_url(url: Any) -> str | None:
    """The model id in a Baseten model URL (``.../models/<id>/...``) the task pushed."""
    if not isinstance(url, str) or "/models/" not in url:
        return None
    return url.split("/models/", 1)[1].split("/", 1)[0] or None


def batch_view(record: TaskRecord) -> dict[str, Any]:
    """The batch tab: counts, throughput, the first failed items with their errors, the output file."""
    summary = dict(_batch_summary(record.xcoms.get("return_value")) or {})
    done = int(summary.get("succeeded", 0)) + int(summary.get("failed", 0))
    elapsed = float(summary.get("elapsed_seconds") or 0)
    failed_indices = list(summary.get("failed_indices") or [])[:MAX_FAILED]
    output = summary.get("output_path")
    return {
        "summary": summary,
        "throughput": round(done / elapsed, 2) if elapsed > 0 else None,
        "failed": _failed_items(str(output), set(failed_indices)) if output and failed_indices else [],
        "output_path": output,
    }


def _failed_items(path: str, wanted: set[int]) -> list[dict[str, Any]]:
    """``{index, error}`` of the wanted failed items, read from the batch's JSONL output (bounded read)."""
    from airflow_provider_baseten.batch_io import is_parquet

    if is_parquet(path):
        return [{"index": i, "error": None} for i in sorted(wanted)]
    found: dict[int, Any] = {}
    read = 0
    try:
        with _path(path).open("rb") as fh:
            for raw in fh:
                read += len(raw)
                if read > MAX_OUTPUT_BYTES or len(found) == len(wanted):
                    break
                if b'"error"' not in raw:
                    continue
                item = json.loads(raw)
                if item.get("index") in wanted:
                    found[item["index"]] = item.get("error")
    except (OSError, ValueError):
        pass  # the output moved or is not JSONL: the indices are still shown
    return [{"index": i, "error": found.get(i)} for i in sorted(wanted)]


def async_view(record: TaskRecord, hook: Any) -> dict[str, Any]:
    """The async tab: each submitted request's state (first :data:`MAX_ROWS`), and its webhook status."""
    ids = [str(i) for i in (record.xcoms.get(xcom.REQUEST_IDS) or [])]
    model_id = _model_from_url(record.xcoms.get(xcom.MODEL_URL))
    rows = []
    for request_id in ids[:MAX_ROWS]:
        request = hook.get_async_request(request_id, model_id=model_id)
        rows.append(_jsonable(request))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get("status") or "?"] = counts.get(row.get("status") or "?", 0) + 1
    return {"total": len(ids), "requests": rows, "counts": counts}


def nav_view(conn_id: str, hook: Any) -> dict[str, Any]:
    """The nav page's section for one connection: models, environments, promotions, recent training jobs."""
    from airflow_provider_baseten.links import model_url, training_job_url
    from airflow_provider_baseten.models import PROMOTION_ACTIVE_STATES

    models = []
    for model in hook.list_models()[:MAX_ROWS]:
        environments = []
        for env in hook.list_environments(model.id)[:MAX_ROWS]:
            current = env.current_deployment
            promotion = env.in_progress_promotion
            if promotion is not None and promotion.status not in PROMOTION_ACTIVE_STATES:
                promotion = None  # Baseten keeps the last one, finished: not "in progress"
            environments.append(
                {
                    "name": env.name,
                    "serves": current.id if current else None,
                    "status": current.status if current else None,
                    "promotion": _jsonable(promotion) if promotion else None,
                    "candidate": env.candidate_deployment.id if env.candidate_deployment else None,
                }
            )
        models.append({"id": model.id, "name": model.name, "url": model_url(model.id), "environments": environments})
    jobs = []
    for project in hook.list_training_projects()[:MAX_ROWS]:
        for job in hook.list_training_jobs(project.id)[:MAX_ROWS]:
            jobs.append(
                {
                    "id": job.id,
                    "name": job.name,
                    "project": project.name or project.id,
                    "status": job.current_status,
                    "created_at": job.created_at,
                    "url": training_job_url(project.id, job.id),
                }
            )
    jobs.sort(key=lambda j: j["created_at"] or "", reverse=True)
    return {"conn_id": conn_id, "models": models, "jobs": jobs[:MAX_ROWS]}
