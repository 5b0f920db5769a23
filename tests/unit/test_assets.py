"""The ``baseten://`` asset URI scheme: the handler registered in provider info, the factories, the defaults."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from airflow.sdk import Asset, AssetAlias

from airflow_provider_baseten import assets, get_provider_info

VALID = [
    "baseten://model/abcd1234",
    "baseten://model/abcd1234/environments/production",
    "baseten://model/abcd1234/environments/my-staging_2",
    "baseten://model/abcd1234/deployments/dep1prod",
    "baseten://training_project/proj1234",
    "baseten://training_project/proj1234/jobs/job9",
]

MALFORMED = [
    ("baseten://model", "Malformed"),
    ("baseten://model/", "Malformed"),
    ("baseten://models/abcd1234", "Unknown Baseten asset kind 'models'"),
    ("baseten://model/abcd1234/environments", "Malformed"),
    ("baseten://model/abcd1234/jobs/x", "'jobs' is not one of"),
    ("baseten://training_project/p/environments/x", "'environments' is not one of"),
    ("baseten://model/abcd1234/environments/production/extra", "Malformed"),
    ("baseten://model/a b/environments/x", "Invalid Baseten model id 'a b'"),
    ("baseten://model/abcd1234/environments/prod!", "Invalid Baseten environment 'prod!'"),
    ("baseten://model/abcd1234?env=production", "takes no query"),
    ("baseten://model/-abc", "Invalid Baseten model id '-abc'"),
]


def test_the_scheme_is_registered_in_provider_info() -> None:
    (entry,) = get_provider_info()["asset-uris"]
    assert entry["schemes"] == ["baseten"]
    assert entry["handler"] == "airflow_provider_baseten.assets.sanitize_uri"
    assert entry["factory"] == "airflow_provider_baseten.assets.create_asset"


def test_airflow_finds_the_handler_and_factory() -> None:
    try:  # the task-runtime providers manager (Airflow >= 3.2) runs the handler at parse time
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as Manager
    except ImportError:  # Airflow 3.1
        from airflow.providers_manager import ProvidersManager as Manager  # type: ignore[assignment]

    pm = Manager()
    assert pm.asset_uri_handlers["baseten"] is assets.sanitize_uri
    assert pm.asset_factories["baseten"] is assets.create_asset


@pytest.mark.parametrize("uri", VALID)
def test_valid_uris_pass_unchanged(uri: str) -> None:
    assert assets.sanitize_uri(urlsplit(uri)).geturl() == uri
    assert Asset(uri).uri == uri  # through Airflow's own pass, which calls the handler


@pytest.mark.parametrize(("uri", "message"), MALFORMED)
def test_malformed_uris_are_rejected_with_a_clear_error(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"expected baseten://|letters, digits") as info:
        Asset(uri)
    assert message in str(info.value)


def test_the_dashed_project_spelling_is_normalized() -> None:
    assert Asset("baseten://training-project/p1/jobs/j1").uri == "baseten://training_project/p1/jobs/j1"


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("BASETEN://model/abc", "baseten://model/abc"),  # Airflow lower-cases the scheme
        ("baseten://MODEL/abc/environments/production", "baseten://model/abc/environments/production"),
        ("baseten://Training-Project/p1", "baseten://training_project/p1"),  # the kind is a host: any case
        ("baseten://model/abc/environments/production/", "baseten://model/abc/environments/production"),
        ("baseten://model/abc/environments/Production", "baseten://model/abc/environments/Production"),  # ids keep case
    ],
)
def test_case_and_trailing_slash_are_normalized(given: str, normalized: str) -> None:
    assert Asset(given).uri == normalized


@pytest.mark.parametrize(
    "uri",
    [
        "baseten://model/ab%63",  # percent-encoding is not decoded into an id
        "baseten://model/ab%2Fc/environments/x",  # nor into a path separator
        "baseten://model/abç",  # non-ASCII
        "baseten://model/\uff41\uff42\uff43",  # full-width letters
        "baseten://model/abc%20",
        "baseten://model//environments/x",
        "baseten://model:80/abc",
    ],
)
def test_hostile_ids_are_rejected_at_parse_time(uri: str) -> None:
    with pytest.raises(ValueError, match="Baseten"):
        Asset(uri)


def test_a_template_in_an_id_points_to_asset_alias() -> None:
    with pytest.raises(ValueError, match="use an AssetAlias"):
        assets.environment_asset("{{ params.model }}", "production")


def test_factories_build_the_uris_and_share_identity() -> None:
    env = assets.environment_asset("abcd1234", "staging")
    assert env.uri == env.name == "baseten://model/abcd1234/environments/staging"
    assert env.group == "model"
    assert env == assets.create_asset(model_id="abcd1234", environment="staging")
    assert assets.model_asset("m1").uri == "baseten://model/m1"
    assert assets.deployment_asset("m1", "d1") == assets.create_asset(model_id="m1", deployment_id="d1")
    assert assets.training_job_asset("p1", "j1").uri == "baseten://training_project/p1/jobs/j1"
    assert assets.training_project_asset("p1") == assets.create_asset(training_project_id="p1")
    assert assets.output_asset("/data/out.jsonl").uri == "file:///data/out.jsonl"
    assert assets.output_asset("s3://bucket/out.jsonl").uri == "s3://bucket/out.jsonl"


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"model_id": "m", "training_project_id": "p"}, {"model_id": "m", "environment": "e", "deployment_id": "d"}],
)
def test_create_asset_refuses_ambiguous_ids(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="create_asset"):
        assets.create_asset(**kwargs)


def test_operators_default_to_the_environment_asset_or_an_alias() -> None:
    from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
    from airflow_provider_baseten.operators.inference import PredictOperator
    from airflow_provider_baseten.operators.training import CreateTrainingJobOperator

    fixed = PromoteDeploymentOperator(task_id="a", deployment_id="d", model_id="m1", environment="staging")
    assert fixed.outlets == [assets.environment_asset("m1", "staging")]
    templated = PromoteDeploymentOperator(task_id="b", deployment_id="d", model_id="{{ params.m }}")
    assert templated.outlets == [AssetAlias(assets.ENVIRONMENT_ALIAS)]
    from_connection = PromoteDeploymentOperator(task_id="c", deployment_id="d")  # model from the connection
    assert from_connection.outlets == [AssetAlias(assets.ENVIRONMENT_ALIAS)]
    assert PromoteDeploymentOperator(task_id="d", deployment_id="d", model_id="m", outlets=[]).outlets == []

    train = CreateTrainingJobOperator(task_id="t", training_project_id="p", image={"base_image": "x"})
    assert train.outlets == [AssetAlias(assets.TRAINING_JOB_ALIAS)]

    batch = PredictOperator(task_id="p1", model_inputs=[{}], output_path="/tmp/out.jsonl")
    assert batch.outlets == [Asset("file:///tmp/out.jsonl")]
    batch_t = PredictOperator(task_id="p2", model_inputs=[{}], output_path="/tmp/{{ ds }}.jsonl")
    assert batch_t.outlets == [Asset(name="/tmp/{{ ds }}.jsonl", uri="x-baseten-output:/tmp/{{ ds }}.jsonl")]
    assert batch_t.outlets == [assets.output_asset("/tmp/{{ ds }}.jsonl")]  # the pattern: one asset for all runs
    assert PredictOperator(task_id="p3", model_input={}).outlets == []


def test_environment_event_extra_has_the_documented_keys() -> None:
    extra = assets.environment_event_extra(
        model_id="m", environment="production", deployment_id="d2", previous_deployment_id="d1"
    )
    assert set(extra) == {
        "model_id",
        "environment",
        "deployment_id",
        "previous_deployment_id",
        "promoted_at",
        "noop",
        "serving",
    }
    assert extra["noop"] is False and extra["serving"] is True and extra["promoted_at"].endswith("+00:00")


def test_output_assets_carry_no_credentials_or_signature() -> None:
    for path in ("s3://key:secret@bucket/out.jsonl", "s3://bucket/out.jsonl?X-Amz-Signature=secret&X-Amz-Expires=60"):
        asset = assets.output_asset(path)
        assert asset.uri == asset.name == "s3://bucket/out.jsonl", path
        assert "secret" not in repr(asset)


def test_emit_outside_a_task_run_emits_nothing() -> None:
    assert assets.emit_asset_event({}, assets.model_asset("m"), {"x": 1}) is False


def test_values_unknown_at_parse_time_make_an_alias() -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath
    from airflow.sdk import DAG, task

    from airflow_provider_baseten.operators.inference import PredictOperator

    assert not assets.is_templated("m1", "/data/out.jsonl", ObjectStoragePath("s3://bucket/out.jsonl"))
    assert assets.is_templated(None) and assets.is_templated("{{ ds }}")
    with DAG("t_xcomarg_output", schedule=None):

        @task
        def where() -> str:
            return "/tmp/out.jsonl"

        op = PredictOperator(task_id="p", model_inputs=[{}], output_path=where())
    assert op.outlets == []  # an XComArg is known only at run time: its asset would be new every run
    s3 = PredictOperator(task_id="p2", model_inputs=[{}], output_path=ObjectStoragePath("s3://bucket/out.jsonl"))
    assert s3.outlets == [Asset("s3://bucket/out.jsonl")]
    # with a connection id: the same asset a consumer declares as Asset("s3://bucket/out.jsonl")
    conn = ObjectStoragePath("s3://aws_default@bucket/out.jsonl")
    s3_conn = PredictOperator(task_id="p3", model_inputs=[{}], output_path=conn)
    assert s3_conn.outlets == [Asset("s3://bucket/out.jsonl")]
