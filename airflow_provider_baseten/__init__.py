"""Apache Airflow provider for Baseten.

Importing this package is cheap on purpose: the DAG processor imports provider modules constantly, so
nothing here pulls in httpx, pydantic or Airflow until a hook or operator actually needs it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (the ``apache_airflow_provider`` entry point)."""
    from airflow_provider_baseten._conf import CONFIG

    return {
        "package-name": "airflow-provider-baseten",
        "name": "Baseten",
        "description": "Run inference, manage deployments and environments, and train models on Baseten.",
        "versions": [__version__],
        "config": CONFIG,
        "integrations": [
            {
                "integration-name": "Baseten",
                "external-doc-url": "https://docs.baseten.co/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Baseten", "python-modules": ["airflow_provider_baseten.hooks.baseten"]}],
        "operators": [
            {
                "integration-name": "Baseten",
                "python-modules": [
                    "airflow_provider_baseten.operators.inference",
                    "airflow_provider_baseten.operators.openai",
                    "airflow_provider_baseten.operators.deployment",
                    "airflow_provider_baseten.operators.training",
                    "airflow_provider_baseten.operators.deploy",
                    "airflow_provider_baseten.operators.evaluation",
                    "airflow_provider_baseten.operators.chains",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Baseten",
                "python-modules": [
                    "airflow_provider_baseten.sensors.inference",
                    "airflow_provider_baseten.sensors.deployment",
                    "airflow_provider_baseten.sensors.training",
                    "airflow_provider_baseten.sensors.chains",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Baseten",
                "python-modules": [
                    "airflow_provider_baseten.triggers.baseten",
                    "airflow_provider_baseten.triggers.checkpoint",
                    "airflow_provider_baseten.triggers.watchers",
                    "airflow_provider_baseten.triggers.webhooks",
                    "airflow_provider_baseten.triggers.chains",
                ],
            }
        ],
        "extra-links": [
            "airflow_provider_baseten.links.BasetenModelLink",
            "airflow_provider_baseten.links.BasetenDeploymentLink",
            "airflow_provider_baseten.links.BasetenTrainingJobLink",
        ],
        "asset-uris": [
            {
                "schemes": ["baseten"],
                "handler": "airflow_provider_baseten.assets.sanitize_uri",
                "factory": "airflow_provider_baseten.assets.create_asset",
                "to_openlineage_converter": "airflow_provider_baseten.assets.to_openlineage",
            }
        ],
        "connection-types": [
            {
                "connection-type": "baseten",
                "hook-class-name": "airflow_provider_baseten.hooks.baseten.BasetenHook",
                "hook-name": "Baseten",
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "schema", "port"],
                    "relabeling": {"password": "API Key", "host": "Base URL (optional)"},
                    "placeholders": {
                        "password": "Baseten API key (or LowCodeAPI api_token)",
                        "host": "https://api.baseten.co (or https://api.lowcodeapi.com/baseten)",
                    },
                },
                "conn-fields": {
                    "gateway": _choice(
                        "Gateway",
                        "Reach Baseten directly (baseten) or through the LowCodeAPI gateway.",
                        ["baseten", "lowcodeapi"],
                    ),
                    "model_id": {
                        "label": "Default model ID",
                        "description": "Used when an operator does not name a model.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "inference_url": {
                        "label": "Inference URL template",
                        "description": "Model host for predictions; {model_id} is filled in.",
                        "schema": {
                            "type": ["string", "null"],
                            "default": "https://model-{model_id}.api.baseten.co",
                        },
                    },
                    "chain_url": {
                        "label": "Chain URL template",
                        "description": "Chain host for run_remote; {chain_id} is filled in.",
                        "schema": {
                            "type": ["string", "null"],
                            "default": "https://chain-{chain_id}.api.baseten.co",
                        },
                    },
                    "model_apis_url": {
                        "label": "Model APIs URL",
                        "description": "Baseten's shared Model APIs (OpenAI format), used by calls with model_apis=True.",
                        "schema": {"type": ["string", "null"], "default": "https://inference.baseten.co/v1"},
                    },
                    "auth_scheme": _choice(
                        "Auth scheme", "Authorization header scheme for the direct API.", ["Bearer", "Api-Key"]
                    ),
                    "upload_endpoint_url": {
                        "label": "Model upload endpoint URL",
                        "description": "S3-compatible endpoint for model archive uploads (tests, private endpoints). "
                        "Empty: AWS S3, as Baseten hands it out.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "url_format": _choice(
                        "LowCodeAPI URL format",
                        "auto tries the new format and falls back to the old one on 404.",
                        ["auto", "new", "old"],
                    ),
                },
            }
        ],
    }


def _choice(label: str, description: str, choices: list[str]) -> dict[str, Any]:
    """A connection-form field that is one of ``choices`` (the first is the default)."""
    schema = {"type": ["string", "null"], "enum": choices, "default": choices[0]}
    return {"label": label, "description": description, "schema": schema}
