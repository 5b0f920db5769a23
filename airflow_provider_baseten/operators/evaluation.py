"""Evidence at the approval gate: evaluate a candidate deployment against what an environment serves now.

:class:`EvaluateDeploymentOperator` sends the same eval set to both, through the hook's predict path (its
retries and per-call deadline), and reports, side by side: the user's metric functions, the error rate, the
client-side latency p50/p95 and an estimated cost per 1,000 requests. The report goes to XCom
(``baseten_evaluation``, with a Markdown table for the body of Airflow's ``ApprovalOperator``) and to the task
log. A rule-based gate (:class:`GateRule`) can replace or precede the human: a failed rule fails the task with
:class:`~airflow_provider_baseten.exceptions.BasetenGateFailed`.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_baseten import xcom
from airflow_provider_baseten.exceptions import BasetenValidationError
from airflow_provider_baseten.links import BasetenDeploymentLink
from airflow_provider_baseten.operators._base import BasetenBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_baseten.hooks.baseten import BasetenHook

#: ``fn(outputs, expected) -> float``: ``outputs`` in input order, ``None`` where the request failed;
#: ``expected`` the expected outputs (``None`` when the eval set has none).
MetricFn = Callable[[list[Any], "list[Any] | None"], float]
Comparison = Literal[">=", "<=", ">", "<"]

#: The figures every evaluation measures (a user metric may not take these names).
BUILTIN_METRICS = ("error_rate", "latency_p50_ms", "latency_p95_ms", "cost_per_1k_usd")
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}
_RELATIVE = re.compile(r"^\s*(?:(?P<factor>\d+(?:\.\d+)?)\s*[*x]\s*)?current\s*$")


@dataclass(frozen=True)
class Current:
    """A gate threshold relative to what the environment serves now: ``factor`` x the current value.

    :param factor: The multiplier (> 0), e.g. ``1.2`` for "at most 20 % above the current p95".
    """

    factor: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, int | float) or not self.factor > 0:
            raise BasetenValidationError(f"current(factor): factor must be a number > 0, got {self.factor!r}.")

    def __str__(self) -> str:
        return "current" if self.factor == 1 else f"{self.factor:g} x current"


def current(factor: float = 1.0) -> Current:
    """A threshold of ``factor`` x the current deployment's value of the rule's metric."""
    return Current(float(factor))


@dataclass(frozen=True)
class GateRule:
    """One rule of the gate: ``candidate[metric] <op> threshold``.

    :param metric: A metric of the evaluation: one of :data:`BUILTIN_METRICS` or a key of ``metrics=``.
    :param op: ``>=``, ``<=``, ``>`` or ``<``.
    :param threshold: A number, or :class:`Current` (``current()``, ``current(1.2)``).

    The tuple form ``(metric, op, threshold)`` is accepted too, with ``threshold`` a number, ``"current"`` or
    ``"1.2 x current"`` / ``"1.2*current"``.
    """

    metric: str
    op: Comparison
    threshold: float | Current

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise BasetenValidationError(f"gate: a rule's metric must be a name, got {self.metric!r}.", field="gate")
        if self.op not in _COMPARISONS:
            raise BasetenValidationError(
                f"gate: rule on {self.metric!r}: op must be one of {', '.join(_COMPARISONS)}, got {self.op!r}.",
                field="gate",
            )
        t = self.threshold
        if not isinstance(t, Current) and (
            isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t)
        ):
            raise BasetenValidationError(
                f"gate: rule on {self.metric!r}: the threshold must be a finite number or current(...), got {t!r}.",
                field="gate",
            )

    @classmethod
    def of(cls, rule: GateRule | Sequence[Any]) -> GateRule:
        """A rule from a :class:`GateRule` or a ``(metric, op, threshold)`` tuple (see the class)."""
        if isinstance(rule, GateRule):
            return rule
        if isinstance(rule, str) or not isinstance(rule, Sequence) or len(rule) != 3:
            raise BasetenValidationError(
                f"gate: each rule is a GateRule or a (metric, op, threshold) tuple, got {rule!r}.", field="gate"
            )
        metric, op, threshold = rule
        if isinstance(threshold, str):
            found = _RELATIVE.match(threshold)
            if found is None:
                raise BasetenValidationError(
                    f"gate: rule on {metric!r}: threshold {threshold!r} is neither a number nor 'current' / "
                    "'<factor> x current'.",
                    field="gate",
                )
            threshold = current(float(found["factor"] or 1))
        return cls(metric, op, threshold)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold}"

    def check(self, candidate: float | None, reference: float | None) -> dict[str, Any]:
        """The outcome: ``{rule, candidate, threshold, passed}`` (``threshold`` resolved to a number).

        A relative rule with no current value (the environment serves nothing yet) passes, marked
        ``"n/a"``: there is nothing to be worse than. A candidate value that could not be measured
        (``None``: no request succeeded) fails.
        """
        if isinstance(self.threshold, Current):
            if reference is None:
                return {"rule": str(self), "candidate": candidate, "threshold": None, "passed": True, "note": "n/a"}
            limit = reference * self.threshold.factor
        else:
            limit = float(self.threshold)
        passed = candidate is not None and _COMPARISONS[self.op](candidate, limit)
        return {"rule": str(self), "candidate": candidate, "threshold": limit, "passed": passed}


def _resolve_metric(name: str, fn: Any) -> MetricFn:
    """A metric function from a callable or an import path (``pkg.module.fn``), checked at construction."""
    if isinstance(fn, str):
        import importlib

        module, _, attr = fn.rpartition(".")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise BasetenValidationError(f"metrics[{name!r}]: cannot import {fn!r}: {exc}", field="metrics") from exc
    if not callable(fn):
        raise BasetenValidationError(
            f"metrics[{name!r}] must be a callable fn(outputs, expected) -> float or its import path, got "
            f"{type(fn).__name__}.",
            field="metrics",
        )
    return fn  # type: ignore[no-any-return]


@dataclass
class _Measured:
    """What one target answered: outputs in input order (``None`` on error), per-request latencies, wall time."""

    outputs: list[Any]
    errors: dict[int, str]
    latencies_ms: list[float]
    wall_seconds: float


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile (``None`` for no values): the smallest value with ``pct`` % at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


class EvaluateDeploymentOperator(BasetenBaseOperator):
    """Evaluate a candidate deployment against what ``environment`` serves now, on the same eval set.

    Each target gets exactly one request per eval input (the hook's ``predict``, with its retries and per-call
    deadline; at most ``max_concurrency`` in flight), the candidate first, then the current deployment. A
    request that still fails counts as an error of that target, not a task failure. The report, pushed to XCom
    ``baseten_evaluation`` and written to the task log, holds for each target: the ``metrics``, ``error_rate``,
    ``latency_p50_ms`` / ``latency_p95_ms`` (client-side, per request, successful requests only, nearest
    rank), ``cost_per_1k_usd`` (estimated: the instance type's price per minute x the wall time the target
    took for the eval set at this concurrency, on one replica, scaled to 1,000 requests), the difference
    candidate - current, the gate's outcome, and ``markdown``: the same as a table for the ``body`` of an
    ``ApprovalOperator``, with links to the candidate deployment and to the task's Baseten tab.

    When the environment serves no deployment yet, only the candidate is evaluated and rules relative to
    ``current`` pass as ``n/a``.

    :param deployment_id: The candidate deployment.
    :param eval_inputs: The eval set: a list of model inputs, or a JSONL / Parquet file (a path or an
        ``ObjectStoragePath``) read with :func:`~airflow_provider_baseten.batch_io.read_records`.
    :param expected_outputs: The expected output of each input, in order (same length), for the metrics.
    :param expected_field: Instead of ``expected_outputs``: the field of each input record (a dict) that holds
        its expected output; it is removed from the input before sending.
    :param metrics: ``{name: fn}``, each ``fn(outputs, expected) -> float`` a callable or its import path
        (``"my_pkg.metrics.accuracy"``, imported when the DAG is parsed). ``outputs`` has ``None`` where the
        request failed. Not templated, and not part of the serialized DAG (the worker parses the DAG file).
    :param gate: Rules the candidate must pass (:class:`GateRule` or ``(metric, op, threshold)`` tuples,
        e.g. ``("accuracy", ">=", "current")``, ``("error_rate", "<=", 0.01)``,
        ``("latency_p95_ms", "<=", "1.2 x current")``). All are checked and reported; if any fails, the task
        fails with :class:`~airflow_provider_baseten.exceptions.BasetenGateFailed` (not retried), after the
        report is pushed, so the approval and promotion downstream do not run.
    :param model_id: The model (default: the connection's).
    :param environment: The environment whose current deployment is the baseline (default ``"production"``).
    :param max_concurrency: Requests in flight at once per target (1-256; default 8).
    """

    template_fields: Sequence[str] = (
        "deployment_id",
        "model_id",
        "environment",
        "eval_inputs",
        "expected_outputs",
        "baseten_conn_id",
    )
    template_fields_renderers = {"eval_inputs": "json", "expected_outputs": "json"}
    operator_extra_links = (BasetenDeploymentLink(),)
    ui_color = "#fef3e8"

    def __init__(
        self,
        *,
        deployment_id: str,
        eval_inputs: Any,
        expected_outputs: Any = None,
        expected_field: str | None = None,
        metrics: Mapping[str, MetricFn | str] | None = None,
        gate: Sequence[GateRule | Sequence[Any]] = (),
        model_id: str | None = None,
        environment: str = "production",
        max_concurrency: int = 8,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten.client.checks import int_in, is_template

        super().__init__(**kwargs)
        self.deployment_id = _checked_candidate(deployment_id, environment)
        self.model_id = model_id
        self.environment = environment
        self.max_concurrency = int_in("max_concurrency", max_concurrency, 1, 256)
        if expected_outputs is not None and expected_field is not None:
            raise BasetenValidationError(
                "Give expected_outputs= or expected_field=, not both.", field="expected_outputs"
            )
        self.eval_inputs = eval_inputs
        self.expected_outputs = expected_outputs
        self.expected_field = expected_field
        self.metrics: dict[str, MetricFn] = _checked_metrics(metrics)
        self.gate = _checked_gate(gate, (*self.metrics, *BUILTIN_METRICS))
        if not is_template(eval_inputs) and not is_template(expected_outputs):
            self._eval_set()  # a literal eval set is checked when the DAG is parsed; a file or template at run time

    def _eval_set(self) -> tuple[list[Any], list[Any] | None]:
        """The inputs to send and the expected outputs (or ``None``), checked before any request."""
        from airflow_provider_baseten.batch_io import read_records
        from airflow_provider_baseten.client.transport import encode_json

        src = self.eval_inputs
        if isinstance(src, str) or hasattr(src, "open"):
            items = list(read_records(src))
        elif isinstance(src, list | tuple):
            items = list(src)
        else:
            raise BasetenValidationError(
                f"eval_inputs must be a list of inputs or a JSONL/Parquet path, got {type(src).__name__}.",
                field="eval_inputs",
            )
        if not items:
            raise BasetenValidationError("eval_inputs is empty: give at least one input.", field="eval_inputs")
        expected: list[Any] | None = None
        if self.expected_field is not None:
            field = self.expected_field
            expected, inputs = [], []
            for i, item in enumerate(items):
                if not isinstance(item, dict) or field not in item:
                    raise BasetenValidationError(
                        f"eval_inputs[{i}] has no field {field!r} (expected_field).", field="expected_field"
                    )
                expected.append(item[field])
                inputs.append({k: v for k, v in item.items() if k != field})
            items = inputs
        elif self.expected_outputs is not None:
            if not isinstance(self.expected_outputs, list | tuple) or len(self.expected_outputs) != len(items):
                given = len(self.expected_outputs) if isinstance(self.expected_outputs, list | tuple) else "not a list"
                raise BasetenValidationError(
                    f"expected_outputs must be a list with one item per input ({len(items)}), got {given}.",
                    field="expected_outputs",
                )
            expected = list(self.expected_outputs)
        for i, item in enumerate(items):
            encode_json(item, f"eval_inputs[{i}]")
        return items, expected

    def execute(self, context: Context) -> None:
        """Evaluate both targets, push and log the report, then apply the gate."""
        from airflow_provider_baseten._tasks import push_deployment, resolve_model
        from airflow_provider_baseten.client.checks import check_target
        from airflow_provider_baseten.exceptions import BasetenGateFailed

        check_target(self.environment, None, who=type(self).__name__)
        check_target(None, self.deployment_id, who=type(self).__name__)
        inputs, expected = self._eval_set()  # before any request
        hook = self.hook
        model_id = resolve_model(hook, self.model_id)
        candidate = hook.get_deployment(self.deployment_id, model_id=model_id)
        serving = self._serving(hook, model_id)
        if serving is not None and serving.id == candidate.id:
            raise BasetenValidationError(
                f"Deployment {candidate.id} is what {self.environment} serves already: nothing to compare it with.",
                field="deployment_id",
            )
        push_deployment(context, model_id, candidate.id, log=self.log)
        self.log.info(
            "Evaluating candidate %s against %s (%s) on %d inputs, %d in flight.",
            candidate.id,
            self.environment,
            serving.id if serving is not None else "serving nothing",
            len(inputs),
            self.max_concurrency,
        )
        measured = {"candidate": self._measure(hook, inputs, model_id, deployment_id=candidate.id)}
        if serving is not None:
            measured["current"] = self._measure(hook, inputs, model_id, environment=self.environment)
        instance = {"candidate": candidate.instance_type_name, "current": serving and serving.instance_type_name}
        figures = {
            name: self._figures(run, expected, _price_per_minute(hook, instance[name]))
            for name, run in measured.items()
        }
        report = self._report(context, model_id, candidate.id, serving.id if serving else None, figures, instance)
        report["markdown"] = render_markdown(report)
        context["ti"].xcom_push(key=xcom.BASETEN_EVALUATION, value=report)
        self.log.info("Evaluation report:\n%s", report["markdown"])
        failed = [r for r in report["gate"]["rules"] if not r["passed"]]
        if failed:
            raise BasetenGateFailed(failed)

    def _serving(self, hook: BasetenHook, model_id: str) -> Any:
        """The deployment the environment serves now, or ``None`` when it serves none yet."""
        from airflow_provider_baseten.exceptions import BasetenNotFoundError

        if self.environment in ("production", "development"):
            try:
                return hook.get_deployment(self.environment, model_id=model_id)
            except BasetenNotFoundError:
                return None
        return hook.get_environment(self.environment, model_id=model_id).current_deployment

    def _measure(self, hook: BasetenHook, inputs: list[Any], model_id: str, **target: str) -> _Measured:
        return asyncio.run(measure(hook, inputs, model_id=model_id, concurrency=self.max_concurrency, **target))

    def _figures(self, run: _Measured, expected: list[Any] | None, price_per_minute: float | None) -> dict[str, Any]:
        """The metrics and built-in figures of one target."""
        n = len(run.outputs)
        values: dict[str, Any] = {}
        for name, fn in self.metrics.items():
            value = fn(list(run.outputs), None if expected is None else list(expected))
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise BasetenValidationError(
                    f"metrics[{name!r}] returned {value!r}; a metric must return a finite number.", field="metrics"
                )
            values[name] = float(value)
        ok = [ms for i, ms in enumerate(run.latencies_ms) if i not in run.errors]
        values["error_rate"] = len(run.errors) / n
        values["latency_p50_ms"] = percentile(ok, 50)
        values["latency_p95_ms"] = percentile(ok, 95)
        values["cost_per_1k_usd"] = (
            None if price_per_minute is None else price_per_minute * run.wall_seconds / 60 / n * 1000
        )
        return {
            "requests": n,
            "errors": len(run.errors),
            "first_errors": {str(i): e for i, e in sorted(run.errors.items())[:5]},
            "values": values,
        }

    def _report(
        self,
        context: Context,
        model_id: str,
        candidate_id: str,
        current_id: str | None,
        figures: dict[str, dict[str, Any]],
        instance: dict[str, str | None],
    ) -> dict[str, Any]:
        from airflow_provider_baseten.links import baseten_tab_url, deployment_url

        cand = figures["candidate"]["values"]
        cur = figures["current"]["values"] if "current" in figures else None
        delta = {
            k: (v - cur[k] if cur is not None and v is not None and cur.get(k) is not None else None)
            for k, v in cand.items()
        }
        rules = [rule.check(cand.get(rule.metric), cur.get(rule.metric) if cur else None) for rule in self.gate]
        ti = context["ti"]
        return {
            "model_id": model_id,
            "environment": self.environment,
            "inputs": figures["candidate"]["requests"],
            "candidate": {
                "deployment_id": candidate_id,
                "instance_type": instance["candidate"],
                **figures["candidate"],
            },
            "current": (
                {"deployment_id": current_id, "instance_type": instance["current"], **figures["current"]}
                if "current" in figures
                else None
            ),
            "delta": delta,
            "gate": {"passed": all(r["passed"] for r in rules), "rules": rules},
            "cost_estimated": True,
            "links": {
                "deployment": deployment_url(model_id, candidate_id),
                "baseten_tab": baseten_tab_url(
                    getattr(ti, "dag_id", ""), getattr(ti, "run_id", ""), ti.task_id, getattr(ti, "map_index", -1)
                ),
            },
        }


async def measure(
    hook: BasetenHook,
    inputs: list[Any],
    *,
    model_id: str,
    concurrency: int,
    environment: str | None = None,
    deployment_id: str | None = None,
) -> _Measured:
    """Send each input once to one target, at most ``concurrency`` at a time; time each request.

    A request that fails (after the hook's retries) is recorded as that input's error. An error that says the
    task itself is wrong (the key is refused, the model or deployment does not exist) is raised instead.
    """
    from airflow_provider_baseten.exceptions import BasetenAuthError, BasetenError, BasetenNotFoundError

    n = len(inputs)
    outputs: list[Any] = [None] * n
    latencies = [0.0] * n
    errors: dict[int, str] = {}
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            started = time.perf_counter()
            try:
                outputs[i] = await hook.apredict(
                    inputs[i], model_id=model_id, environment=environment, deployment_id=deployment_id
                )
            except (BasetenAuthError, BasetenNotFoundError):
                raise
            except BasetenError as exc:
                errors[i] = str(exc)
            finally:
                latencies[i] = (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await hook.aclose()  # its connections belong to this event loop, which ends here
    return _Measured(outputs, errors, latencies, time.perf_counter() - started)


def _price_per_minute(hook: BasetenHook, instance_type: str | None) -> float | None:
    """USD per minute of ``instance_type`` (:func:`~airflow_provider_baseten.cost.price_per_minute`, cached per
    process); ``None`` (cost shown as n/a, with a WARNING) when it cannot be priced.

    A deployment's ``instance_type_name`` is the type's *name* in Baseten's spec (``DeploymentV1``); the price
    table is keyed by both name and id.
    """
    from airflow_provider_baseten.cost import price_per_minute
    from airflow_provider_baseten.exceptions import BasetenError

    if not instance_type:
        hook.log.warning("The deployment names no instance type: its cost per 1,000 requests is not estimated.")
        return None
    try:
        return price_per_minute(hook, instance_type)
    except BasetenError as exc:
        hook.log.warning(
            "No price for instance type %r (%s): cost per 1,000 requests is not estimated.", instance_type, exc
        )
        return None


_LABELS = {
    "error_rate": "error rate",
    "latency_p50_ms": "latency p50 (ms)",
    "latency_p95_ms": "latency p95 (ms)",
    "cost_per_1k_usd": "est. cost / 1k requests (USD)",
}


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: a table candidate | current | candidate - current, the gate, the links."""
    cand, cur = report["candidate"], report["current"]
    env = report["environment"]
    baseline = f"{env} (`{cur['deployment_id']}`)" if cur else f"{env} (serves nothing yet)"
    lines = [
        f"#### Candidate `{cand['deployment_id']}` vs {baseline}, {report['inputs']} eval inputs",
        "",
        f"| metric | candidate | {env} | candidate - {env} |",
        "|---|---:|---:|---:|",
    ]
    for key, value in cand["values"].items():
        other = cur["values"].get(key) if cur else None
        lines.append(
            f"| {_LABELS.get(key, key)} | {_fmt(value)} | {_fmt(other)} | {_fmt(report['delta'].get(key), True)} |"
        )
    gate = report["gate"]
    if gate["rules"]:
        lines += ["", f"**Gate: {'passed' if gate['passed'] else 'FAILED'}**", ""]
        for r in gate["rules"]:
            mark = "pass" if r["passed"] else "FAIL"
            detail = r.get("note") or f"{_fmt(r['candidate'])} vs {_fmt(r['threshold'])}"
            lines.append(f"- {mark}: `{r['rule']}` ({detail})")
    lines += [
        "",
        f"Errors: candidate {cand['errors']}/{cand['requests']}"
        + (f", {env} {cur['errors']}/{cur['requests']}" if cur else "")
        + ". Cost is an estimate: price per minute x the time the eval set took, one replica.",
        "",
        f"[Candidate deployment on Baseten]({report['links']['deployment']}) · "
        f"[Baseten tab of this task]({report['links']['baseten_tab']})",
    ]
    return "\n".join(lines)


def _checked_candidate(deployment_id: Any, environment: Any) -> Any:
    """The candidate's ``deployment_id`` (a real id, or a template) and the ``environment`` it is held against."""
    from airflow_provider_baseten.client.checks import check_target, is_template

    check_target(environment, None, who="EvaluateDeploymentOperator", templates_ok=True)
    if not is_template(deployment_id) and (
        not isinstance(deployment_id, str) or not deployment_id or deployment_id in ("production", "development")
    ):
        raise BasetenValidationError(
            f"EvaluateDeploymentOperator: deployment_id must be the candidate deployment's id, got {deployment_id!r}.",
            field="deployment_id",
        )
    check_target(None, deployment_id, who="EvaluateDeploymentOperator", templates_ok=True)
    return deployment_id


def _checked_metrics(metrics: Mapping[str, MetricFn | str] | None) -> dict[str, MetricFn]:
    """The user's metric functions by name (import paths imported now, at parse time)."""
    checked: dict[str, MetricFn] = {}
    for name, fn in (metrics or {}).items():
        if not isinstance(name, str) or not name or name in BUILTIN_METRICS:
            raise BasetenValidationError(
                f"metrics: a metric's name must be a non-empty string other than {', '.join(BUILTIN_METRICS)}; "
                f"got {name!r}.",
                field="metrics",
            )
        checked[name] = _resolve_metric(name, fn)
    return checked


def _checked_gate(gate: Sequence[GateRule | Sequence[Any]], known: Sequence[str]) -> list[GateRule]:
    """The gate's rules, each naming a metric of this evaluation."""
    if isinstance(gate, GateRule) or (isinstance(gate, tuple) and gate and isinstance(gate[0], str)):
        raise BasetenValidationError("gate must be a list of rules, e.g. [('error_rate', '<=', 0.01)].", field="gate")
    rules = [GateRule.of(rule) for rule in gate]
    for rule in rules:
        if rule.metric not in known:
            raise BasetenValidationError(
                f"gate: rule {rule} names no metric of this evaluation; known: {', '.join(known)}.", field="gate"
            )
    return rules
