"""The public API as a type checker sees it: user scripts checked by ``mypy --strict``.

Every snippet below is a small user script; all of them are checked in one mypy run. The scripts live in the
system temp directory, one directory per checkout; mypy's cache is the one ``make test``'s own mypy run has
just filled (``MYPY_CACHE_DIR``): a cold run analyses Airflow, httpx and pydantic (about 25 s of
CPU), a warm one only what changed. mypy checks every cache entry
against its source (the scripts keep one path, as mypy's cache is keyed by module and path), so a stale
cache costs time, never a wrong answer.
A line that must fail carries ``# E: <code>`` and must get exactly that error; every other line must be
clean; ``# R: <type>`` says what ``reveal_type`` on that line must print.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.unit._surface import hook_method_pairs

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[2]
WORK = Path(tempfile.gettempdir()) / f"baseten-typing-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]}"
# make test runs `mypy --strict` over the package just before pytest, and points both at one cache (MYPY_CACHE_DIR,
# read by mypy too; the checkout's .mypy_cache otherwise): with the same strictness and target Python version, this
# run reuses that one's analysis of Airflow, httpx and pydantic instead of repeating it (~25 s of CPU when cold).
CACHE = Path(os.environ.get("MYPY_CACHE_DIR", ROOT / ".mypy_cache"))


def _target_python() -> str:
    """The project's ``python_version`` line for the snippets' config (the cache is kept per target version)."""
    if sys.version_info < (3, 11):
        return ""  # no tomllib, and Python 3.10 checks for 3.10 anyway
    import tomllib

    return (
        f"python_version = {tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['mypy']['python_version']}\n"
    )


SNIPPETS = {
    "reveal_types": """
        from airflow_provider_baseten.hooks.baseten import BasetenHook


        async def main(hook: BasetenHook) -> None:
            import asyncio

            task = asyncio.create_task(hook.aget_model())  # a coroutine, not just an awaitable
            reveal_type(await task)  # R: airflow_provider_baseten.models.Model
            reveal_type(await hook.aget_training_job("p", "j"))  # R: airflow_provider_baseten.models.TrainingJob
            reveal_type(hook.get_training_job("p", "j"))  # R: airflow_provider_baseten.models.TrainingJob
            reveal_type(hook.get_model("m"))  # R: airflow_provider_baseten.models.Model
            reveal_type(await hook.alist_deployments())  # R: list[airflow_provider_baseten.models.Deployment]
            reveal_type(hook.predict_batch([1, 2]))  # R: airflow_provider_baseten.client.batch.engine.BatchResult
            reveal_type(hook.aget_model)  # R: def (model_id: str | None =) -> typing.Coroutine[Any, Any, airflow_provider_baseten.models.Model]
    """,
    "wrong_argument_type": """
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        hook = BasetenHook()
        hook.get_model(123)  # E: arg-type
        hook.get_training_job("p", 7)  # E: arg-type
        hook.get_deployment_logs("d", limit="many")  # E: arg-type


        async def main() -> None:
            await hook.aget_deployment(1)  # E: arg-type
    """,
    "wrong_keyword": """
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        hook = BasetenHook()
        hook.get_deployment("d", modelid="m")  # E: call-arg
        hook.list_training_jobs(project="p")  # E: call-arg


        async def main() -> None:
            await hook.aget_training_job("p", job="j")  # E: call-arg
    """,
    "wrong_use_of_result": """
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        hook = BasetenHook()
        status: int = hook.get_training_job("p", "j").current_status  # E: assignment
        hook.get_model("m").no_such_field  # E: attr-defined
        count: str = len(hook.list_models())  # E: assignment
    """,
    "dag_ok": """
        from __future__ import annotations

        import asyncio
        from typing import Any

        from airflow.sdk import dag, task

        from airflow_provider_baseten.batch import BatchResult
        from airflow_provider_baseten.config import RetryPolicy, Settings, Timeouts
        from airflow_provider_baseten.exceptions import BasetenError, BasetenNotFoundError
        from airflow_provider_baseten.hooks.baseten import BasetenHook
        from airflow_provider_baseten.models import Deployment, Model, TrainingJob
        from airflow_provider_baseten.operators.base import BasetenBaseOperator, BasetenWaitingOperator
        from airflow_provider_baseten.sensors.base import BasetenTriggerSensor


        def hook_for(api_key: str) -> BasetenHook:
            settings = Settings(api_key=api_key, timeouts=Timeouts(connect=5.0), retry=RetryPolicy(max_attempts=3))
            return BasetenHook(settings=settings)


        @dag(schedule=None)
        def retrain() -> None:
            @task
            def check_model(model_id: str) -> str:
                hook = BasetenHook("baseten_default", timeouts=Timeouts(predict_read=300.0))
                model: Model = hook.get_model(model_id)
                active: list[Deployment] = [d for d in hook.list_deployments(model_id) if d.is_production]
                return f"{model.name}: {len(active)} production deployment(s)"

            @task
            def train(project: str) -> str | None:
                hook = BasetenHook()
                job: TrainingJob = hook.create_training_job(project, {"image": {"base_image": "x"}, "name": "run"})
                try:
                    job = hook.stop_training_job(project, job.id)
                except BasetenNotFoundError:
                    return None
                return job.current_status

            @task
            def score(inputs: list[dict[str, Any]]) -> dict[str, Any]:
                hook = BasetenHook()

                async def both() -> tuple[Any, TrainingJob]:
                    first = await hook.apredict(inputs[0], environment="staging")
                    job = await hook.aget_training_job("p", "j")
                    return first, job

                first, job = asyncio.run(both())
                result: BatchResult = hook.predict_batch(inputs, max_concurrency=8)
                return {"first": first, "job": job.id, "summary": result.summary()}

            check_model("m") >> train("p")
            score([{"x": 1}])


        retrain()


        class MyOperator(BasetenBaseOperator):
            def execute(self, context: Any) -> str:
                try:
                    return self.hook.get_model().id
                except BasetenError as exc:
                    return str(exc)


        bases: tuple[type, ...] = (BasetenWaitingOperator, BasetenTriggerSensor)
    """,
}


PAIRS = hook_method_pairs()
SNIPPETS["every_hook_method"] = "\n".join(
    [
        "from airflow_provider_baseten.hooks.baseten import BasetenHook",
        "",
        "",
        "def main(hook: BasetenHook) -> None:",
        *(f"    reveal_type(hook.{prefix}{name})" for name in PAIRS for prefix in ("", "a")),
    ]
)

_MARK = re.compile(r"#\s*([ER]):\s*(.+?)\s*$")
_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<msg>.*?)(?:\s+\[(?P<code>[\w-]+)\])?$")


def _expected(text: str) -> dict[int, tuple[str, str]]:
    """``{line number: ("E", code) | ("R", type)}`` from the snippet's markers."""
    found = {}
    for number, line in enumerate(text.splitlines(), 1):
        mark = _MARK.search(line)
        if mark:
            found[number] = (mark.group(1), mark.group(2))
    return found


@pytest.fixture(scope="module")
def mypy_output() -> dict[str, dict[int, list[tuple[str, str, str]]]]:
    """Check every snippet in one mypy run; ``{snippet: {line: [(kind, code, message)]}}``."""
    tmp = WORK / "snippets"
    tmp.mkdir(parents=True, exist_ok=True)
    for name, text in SNIPPETS.items():
        (tmp / f"{name}.py").write_text(textwrap.dedent(text).lstrip("\n"))
    config = tmp / "mypy.ini"  # the user's view: strict, nothing else from the project's own configuration
    config.write_text(f"[mypy]\nstrict = True\nshow_error_codes = True\n{_target_python()}")
    stdout, stderr, _status = mypy_api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(CACHE),
            "--no-color-output",
            "--no-error-summary",
            "--show-absolute-path",
            *(str(tmp / f"{name}.py") for name in SNIPPETS),
        ]
    )
    assert not stderr, stderr
    out: dict[str, dict[int, list[tuple[str, str, str]]]] = {name: {} for name in SNIPPETS}
    for line in stdout.splitlines():
        m = _LINE.match(line)
        assert m, f"unexpected mypy output: {line}"
        path = Path(m["file"])
        assert path.parent == tmp, f"mypy reported on a file that is not a user snippet: {line}"
        out[path.stem].setdefault(int(m["line"]), []).append((m["kind"], m["code"] or "", m["msg"]))
    return out


def _check(name: str, output: dict[str, dict[int, list[tuple[str, str, str]]]]) -> None:
    text = textwrap.dedent(SNIPPETS[name]).lstrip("\n")
    expected = _expected(text)
    got = output[name]
    for number, (kind, what) in expected.items():
        reports = got.get(number, [])
        if kind == "E":
            codes = [code for k, code, _ in reports if k == "error"]
            assert codes == [what], f"{name}.py:{number}: expected one [{what}] error, mypy said {reports}"
        else:
            revealed = [msg for k, _, msg in reports if k == "note" and msg.startswith("Revealed type is")]
            assert revealed == [f'Revealed type is "{what}"'], f"{name}.py:{number}: mypy said {reports}"
    unexpected = {n: r for n, r in got.items() if n not in expected}
    assert not unexpected, f"{name}.py: mypy reported on lines that should be clean: {unexpected}"


def test_reveal_type_of_sync_and_async_hook_methods(
    mypy_output: dict[str, dict[int, list[tuple[str, str, str]]]],
) -> None:
    """``await hook.aget_training_job("p", "j")`` is ``TrainingJob``; the async twin keeps the parameters."""
    _check("reveal_types", mypy_output)


def test_wrong_argument_type_is_an_error(mypy_output: dict[str, dict[int, list[tuple[str, str, str]]]]) -> None:
    """``hook.get_model(123)`` (and other wrong types, sync and async) fail type checking."""
    _check("wrong_argument_type", mypy_output)


def test_wrong_keyword_is_an_error(mypy_output: dict[str, dict[int, list[tuple[str, str, str]]]]) -> None:
    """A misspelled keyword fails type checking, on the sync method and on its async twin."""
    _check("wrong_keyword", mypy_output)


def test_results_are_their_models(mypy_output: dict[str, dict[int, list[tuple[str, str, str]]]]) -> None:
    """A returned model is its class, not ``Any``: a wrong field or a wrong type of a field is an error."""
    _check("wrong_use_of_result", mypy_output)


def test_correct_dag_script_type_checks_clean(mypy_output: dict[str, dict[int, list[tuple[str, str, str]]]]) -> None:
    """A DAG using sync and async hook methods and the public types passes ``mypy --strict`` untouched."""
    _check("dag_ok", mypy_output)


def _split_callable(revealed: str) -> tuple[str, str]:
    """``def (params) -> returns`` as (params, returns), split at the arrow outside any brackets (mypy
    leaves out ``-> None``)."""
    assert revealed.startswith("def ("), revealed
    depth = 0
    for i, c in enumerate(revealed):
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0 and revealed.startswith(" -> ", i):
            return revealed[4:i], revealed[i + 4 :]
    return revealed[4:], "None"


def test_every_async_twin_has_its_sync_methods_parameters(
    mypy_output: dict[str, dict[int, list[tuple[str, str, str]]]],
) -> None:
    """Each of the hook's sync methods and its ``a`` twin is visible to mypy (not ``Any``, not missing) with
    the same parameters, and the twin's awaited type is the sync method's return type."""
    assert len(PAIRS) >= 50, PAIRS  # the whole surface, not an empty loop
    got = mypy_output["every_hook_method"]
    revealed = {}
    for number in range(5, 5 + 2 * len(PAIRS)):
        reports = got.get(number, [])
        assert [k for k, _, _ in reports] == ["note"], f"line {number}: {reports}"
        revealed[number] = reports[0][2].removeprefix("Revealed type is ").strip('"')
    for i, name in enumerate(PAIRS):
        sync_params, sync_returns = _split_callable(revealed[5 + 2 * i])
        async_params, async_returns = _split_callable(revealed[6 + 2 * i])
        assert async_params == sync_params, f"a{name}{async_params} vs {name}{sync_params}"
        assert async_returns in (
            f"typing.Awaitable[{sync_returns}]",
            f"typing.Coroutine[Any, Any, {sync_returns}]",
            f"typing.AsyncIterator[{sync_returns.removeprefix('typing.Iterator[').removesuffix(']')}]",
        ), f"a{name} returns {async_returns}, {name} returns {sync_returns}"


def test_package_ships_py_typed() -> None:
    """``py.typed`` is in the package, so type checkers read the provider's annotations."""
    assert (ROOT / "airflow_provider_baseten" / "py.typed").is_file()
