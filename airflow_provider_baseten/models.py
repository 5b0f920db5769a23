"""Pydantic models of Baseten's objects and of the options the provider validates before sending.

Response models are permissive (``extra="allow"``): Baseten adds fields over time and a new field must not
break a pipeline. Status fields are plain strings, because Baseten adds states too; the known values are
the ``*Status`` enums below, and the ``*_STATES`` sets say which are terminal.

Why one module of about 600 lines: it holds declarations only (no behaviour beyond ``parse``), the one
vocabulary that the hook, the operators, the triggers and the emulator's tests share; split by API part,
the many cross-references (a deployment inside an environment inside a promotion) would become imports
between the parts, and ``airflow_provider_baseten.models`` is the import path users already have.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from airflow_provider_baseten.client.redact import redact
from airflow_provider_baseten.exceptions import BasetenResponseError, BasetenValidationError


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- statuses ------------------------------------------------------------------------------------------
class DeploymentStatus(str, Enum):
    """Known ``Deployment.status`` values."""

    BUILDING = "BUILDING"
    DEPLOYING = "DEPLOYING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    LOADING_MODEL = "LOADING_MODEL"
    ACTIVE = "ACTIVE"
    UNHEALTHY = "UNHEALTHY"
    BUILD_FAILED = "BUILD_FAILED"
    BUILD_STOPPED = "BUILD_STOPPED"
    DEACTIVATING = "DEACTIVATING"
    INACTIVE = "INACTIVE"
    FAILED = "FAILED"
    UPDATING = "UPDATING"
    SCALED_TO_ZERO = "SCALED_TO_ZERO"
    WAKING_UP = "WAKING_UP"


DEPLOYMENT_FAILED_STATES = frozenset({"BUILD_FAILED", "DEPLOY_FAILED", "FAILED", "UNHEALTHY", "BUILD_STOPPED"})


class AsyncRequestStatus(str, Enum):
    """Known async request ``status`` values."""

    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELED = "CANCELED"
    WEBHOOK_FAILED = "WEBHOOK_FAILED"


ASYNC_ACTIVE_STATES = frozenset({"QUEUED", "IN_PROGRESS"})
#: Not Baseten's: the provider's name for a request whose status Baseten no longer keeps (404 an hour
#: after it finished). It is terminal, with an unknown outcome.
ASYNC_STATUS_UNKNOWN = "UNKNOWN"
ASYNC_TERMINAL_STATES = frozenset(
    {"SUCCEEDED", "FAILED", "EXPIRED", "CANCELED", "WEBHOOK_FAILED", ASYNC_STATUS_UNKNOWN}
)


class WebhookStatus(str, Enum):
    """Known async request ``webhook_status`` values."""

    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    NO_WEBHOOK_PROVIDED = "NO_WEBHOOK_PROVIDED"


class TrainingJobStatus(str, Enum):
    """Known training job ``current_status`` values (an open set: unknown ones are waited on)."""

    PENDING = "TRAINING_JOB_PENDING"
    QUEUED = "TRAINING_JOB_QUEUED"
    CREATED = "TRAINING_JOB_CREATED"
    DEPLOYING = "TRAINING_JOB_DEPLOYING"
    RUNNING = "TRAINING_JOB_RUNNING"
    COMPLETED = "TRAINING_JOB_COMPLETED"
    DEPLOY_FAILED = "TRAINING_JOB_DEPLOY_FAILED"
    FAILED = "TRAINING_JOB_FAILED"
    STOPPED = "TRAINING_JOB_STOPPED"
    EXPIRED = "TRAINING_JOB_EXPIRED"


TRAINING_ACTIVE_STATES = frozenset(
    {
        "TRAINING_JOB_PENDING",
        "TRAINING_JOB_QUEUED",
        "TRAINING_JOB_CREATED",
        "TRAINING_JOB_DEPLOYING",
        "TRAINING_JOB_RUNNING",
    }
)
TRAINING_FAILED_STATES = frozenset(
    {"TRAINING_JOB_DEPLOY_FAILED", "TRAINING_JOB_FAILED", "TRAINING_JOB_STOPPED", "TRAINING_JOB_EXPIRED"}
)
TRAINING_TERMINAL_STATES = TRAINING_FAILED_STATES | {"TRAINING_JOB_COMPLETED"}


class PromotionStatus(str, Enum):
    """Known ``in_progress_promotion.status`` values."""

    RELEASING = "RELEASING"
    RAMPING_UP = "RAMPING_UP"
    RAMPING_DOWN = "RAMPING_DOWN"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


PROMOTION_ACTIVE_STATES = frozenset({"RELEASING", "RAMPING_UP", "RAMPING_DOWN", "PAUSED"})


class ApiKeyType(str, Enum):
    """API key types ``create_api_key`` accepts."""

    PERSONAL = "PERSONAL"
    WORKSPACE_MANAGE_ALL = "WORKSPACE_MANAGE_ALL"
    WORKSPACE_EXPORT_METRICS = "WORKSPACE_EXPORT_METRICS"
    WORKSPACE_INVOKE = "WORKSPACE_INVOKE"


# -- management objects --------------------------------------------------------------------------------
class AutoscalingSettings(_Response):
    """A deployment's or environment's autoscaling settings."""

    min_replica: int | None = None
    max_replica: int | None = None
    autoscaling_window: int | None = None
    scale_down_delay: int | None = None
    concurrency_target: int | None = None
    target_utilization_percentage: int | None = None
    max_scale_down_rate: int | None = None


class Model(_Response):
    """A Baseten model."""

    id: str
    name: str | None = None
    created_at: str | None = None
    deployments_count: int | None = None
    production_deployment_id: str | None = None
    development_deployment_id: str | None = None
    instance_type_name: str | None = None
    team_name: str | None = None


class Deployment(_Response):
    """A deployment of a model."""

    id: str
    model_id: str | None = None
    name: str | None = None
    created_at: str | None = None
    is_production: bool | None = None
    is_development: bool | None = None
    status: str | None = None
    active_replica_count: int | None = None
    autoscaling_settings: AutoscalingSettings | None = None
    instance_type_name: str | None = None
    environment: str | None = None
    labels: dict[str, Any] | None = None


class Promotion(_Response):
    """An environment's in-progress promotion (Baseten's ``InProgressPromotionV1``).

    ``status`` is one of :class:`PromotionStatus` (RELEASING, RAMPING_UP, RAMPING_DOWN, PAUSED, then
    SUCCEEDED, FAILED or CANCELED); ``error_message`` says why a FAILED promotion failed.
    """

    status: str | None = None
    percent_traffic_to_new_version: int | float | None = None
    error_message: str | None = None
    rolling_deploy: bool | None = None


#: The name Baseten's spec uses for :class:`Promotion`.
InProgressPromotion = Promotion


class Environment(_Response):
    """A model environment (``production``, ``staging``, ...)."""

    name: str
    model_id: str | None = None
    created_at: str | None = None
    current_deployment: Deployment | None = None
    candidate_deployment: Deployment | None = None
    in_progress_promotion: Promotion | None = None
    autoscaling_settings: AutoscalingSettings | None = None
    promotion_settings: dict[str, Any] | None = None
    instance_type: dict[str, Any] | None = None


class Secret(_Response):
    """A workspace secret's metadata. Baseten never returns secret values."""

    name: str
    id: str | None = None
    created_at: str | None = None
    team_name: str | None = None


class ApiKey(_Response):
    """An API key's metadata (never the key itself)."""

    prefix: str
    name: str | None = None
    type: str | None = None
    model_ids: list[str] | None = None
    team_name: str | None = None


class CreatedApiKey(_Response):
    """The answer to ``create_api_key``. ``api_key`` is the plaintext, shown once; the repr hides it."""

    api_key: str = Field(repr=False)


class Chain(_Response):
    """A Baseten chain."""

    id: str
    name: str | None = None
    created_at: str | None = None
    deployments_count: int | None = None
    team_name: str | None = None


class Chainlet(_Response):
    """One chainlet of a chain deployment (Baseten's ``ChainletV1``); it runs on a model deployment of its own."""

    id: str
    name: str | None = None
    autoscaling_settings: AutoscalingSettings | None = None
    instance_type_name: str | None = None
    active_replica_count: int | None = None
    status: str | None = None


class ChainDeployment(_Response):
    """A deployment of a chain (Baseten's ``ChainDeploymentV1``): its chainlets and their overall ``status``."""

    id: str
    chain_id: str | None = None
    created_at: str | None = None
    environment: str | None = None
    chainlets: list[Chainlet] = Field(default_factory=list)
    status: str | None = None


class ChainletEnvironmentSettings(_Response):
    """A chainlet's settings in a chain environment: autoscaling and instance type."""

    chainlet_name: str
    autoscaling_settings: AutoscalingSettings | None = None
    instance_type: dict[str, Any] | None = None


class ChainEnvironment(_Response):
    """A chain environment (Baseten's ``ChainEnvironmentV1``).

    A promotion into it is in progress while ``candidate_deployment`` is set; the chain API reports no
    promotion status of its own (unlike a model environment's ``in_progress_promotion``).
    """

    name: str
    chain_id: str | None = None
    created_at: str | None = None
    promotion_settings: dict[str, Any] | None = None
    chainlet_settings: list[ChainletEnvironmentSettings] = Field(default_factory=list)
    current_deployment: ChainDeployment | None = None
    candidate_deployment: ChainDeployment | None = None


class OkResult(_Response):
    """An ``{ok}`` answer (a chain environment update)."""

    ok: bool


class ChainletInstanceTypeUpdate(_Response):
    """The answer to a chainlet instance-type update: whether it needed a new deployment, and that deployment."""

    requires_redeployment: bool
    chain_deployment: ChainDeployment | None = None
    chainlet_environment_settings: list[ChainletEnvironmentSettings] = Field(default_factory=list)


class Tombstone(_Response):
    """The answer to a delete (a secret's names it; others give its ``id`` and ``deleted``)."""

    id: str | None = None
    deleted: bool | None = None
    name: str | None = None


class StatusMessage(_Response):
    """A ``{status, message}`` answer (autoscaling update, cancel promotion)."""

    status: str
    message: str | None = None


class ActivationResult(_Response):
    """The answer to activate/deactivate."""

    success: bool | None = None


class SignalResult(_Response):
    """The answer to pause/resume/force-cancel/force-roll-forward of a promotion: whether it was signalled."""

    success: bool


class DeploymentConfig(_Response):
    """A deployment's Truss config: ``config`` parsed (a dict) and/or ``raw_config`` (the YAML text)."""

    config: dict[str, Any] | None = None
    raw_config: str | None = None


class DeploymentDownload(_Response):
    """A presigned URL of a deployment's Truss archive (short-lived; it grants access: do not log it)."""

    download_url: str = Field(repr=False)


class CacheFile(_Response):
    """One file in a training project's cache."""

    path: str
    size_bytes: int
    modified: str | None = None
    file_type: str | None = None
    permissions: str | None = None


class TrainingCacheSummary(_Response):
    """What a training project's cache holds (``file_summaries``), as of ``timestamp``."""

    timestamp: str
    project_id: str
    file_summaries: list[CacheFile] = Field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        """The cache's total size."""
        return sum(f.size_bytes for f in self.file_summaries)


class RetryDeploymentResult(_Response):
    """The answer to ``retry_deployment``: ``retried``, and ``reason`` when it was not."""

    retried: bool
    reason: str | None = None
    deployment: Deployment | None = None


class LogLine(_Response):
    """One log line (Baseten's ``LogV1``): ``timestamp`` is epoch nanoseconds, as a string."""

    timestamp: str | int | None = None
    message: str = ""
    replica: str | None = None
    request_id: str | None = None
    level: str | None = None

    @property
    def epoch_ns(self) -> int | None:
        """The timestamp as an integer (epoch nanoseconds), ``None`` if absent or unreadable."""
        try:
            return int(self.timestamp) if self.timestamp is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def epoch_millis(self) -> int | None:
        """The timestamp in epoch milliseconds (what the logs endpoints' window takes)."""
        ns = self.epoch_ns
        return ns // 1_000_000 if ns is not None else None

    def format(self) -> str:
        """``<UTC time> <LEVEL> [replica] message``, for task logs."""
        from datetime import datetime, timezone

        ns = self.epoch_ns
        when = datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%H:%M:%S.%f")[:-3] if ns else "?"
        where = f" [{self.replica}]" if self.replica else ""
        return f"{when} {self.level or '-'}{where} {self.message}"


class MetricDescriptor(_Response):
    """One metric of :class:`DeploymentMetrics`; ``label_sets`` name its series, in order."""

    name: str
    unit_hint: str | None = None
    kind: str | None = None
    label_sets: list[dict[str, str]] = Field(default_factory=list)


class MetricValueSet(_Response):
    """The values of every metric at one step, aligned to ``metric_descriptors`` then ``label_sets``."""

    start_epoch_millis: int | None = None
    values: list[list[float | None]] = Field(default_factory=list)


class DeploymentMetrics(_Response):
    """A deployment's metrics over a window (``mode`` CURRENT, SUMMARY or SERIES)."""

    mode: str | None = None
    start_epoch_millis: int | None = None
    end_epoch_millis: int | None = None
    step_seconds: int | None = None
    metric_descriptors: list[MetricDescriptor] = Field(default_factory=list)
    metric_values: list[MetricValueSet] = Field(default_factory=list)

    def series(self, name: str) -> list[tuple[int | None, list[float | None]]]:
        """``[(start_epoch_millis, [value per label set]), ...]`` of metric ``name`` (``[]`` if absent)."""
        index = next((i for i, d in enumerate(self.metric_descriptors) if d.name == name), None)
        if index is None:
            return []
        return [
            (vs.start_epoch_millis, vs.values[index] if index < len(vs.values) else []) for vs in self.metric_values
        ]


# -- inference objects ---------------------------------------------------------------------------------
class AsyncPredictResult(_Response):
    """The answer to an async predict submit."""

    request_id: str


class AsyncRequestError(_Response):
    """One error of an async request."""

    code: str | None = None
    message: str | None = None


class AsyncRequest(_Response):
    """An async request's status. Outputs are never returned here: they go to the webhook."""

    request_id: str
    status: str
    model_id: str | None = None
    chain_id: str | None = None
    deployment_id: str | None = None
    webhook_status: str | None = None
    created_at: str | None = None
    status_at: str | None = None
    errors: list[AsyncRequestError] = Field(default_factory=list)


class AsyncCancelResult(_Response):
    """The answer to cancelling an async request."""

    request_id: str | None = None
    canceled: bool
    message: str | None = None


class AsyncQueueStatus(_Response):
    """Queue depth of a deployment's async queue."""

    model_id: str | None = None
    deployment_id: str | None = None
    num_queued_requests: int | None = None
    num_in_progress_requests: int | None = None


# -- training objects ----------------------------------------------------------------------------------
# -- OpenAI-compatible inference (``/sync/v1/...`` on a deployment, or Baseten's Model APIs) -------------
class TokenUsage(_Response):
    """Tokens an OpenAI-compatible request used (``usage``); a batch sums them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Embedding(_Response):
    """One vector of an embeddings answer: ``embedding`` is floats, or a base64 string with ``encoding_format="base64"``."""

    index: int
    embedding: list[float] | str
    object: str | None = None


class EmbeddingsResponse(_Response):
    """An OpenAI embeddings answer (``/v1/embeddings``)."""

    data: list[Embedding]
    model: str | None = None
    object: str | None = None
    usage: TokenUsage | None = None

    def vectors(self) -> list[list[float] | str]:
        """The vectors in input order (by ``index``, whatever order the server listed them in)."""
        return [d.embedding for d in sorted(self.data, key=lambda d: d.index)]


class ChatMessage(_Response):
    """A chat message: ``role`` and ``content`` (``None`` when the model answered with tool calls only)."""

    role: str
    content: Any = None


class ChatChoice(_Response):
    """One choice of a chat completion."""

    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None


class ChatCompletion(_Response):
    """An OpenAI chat completion (``/v1/chat/completions``)."""

    id: str | None = None
    object: str | None = None
    created: int | None = None
    model: str | None = None
    choices: list[ChatChoice]
    usage: TokenUsage | None = None

    @property
    def text(self) -> Any:
        """The first choice's ``message.content`` (``None`` when there is no choice)."""
        return self.choices[0].message.content if self.choices else None


class RerankScore(_Response):
    """One scored text of a rerank answer."""

    index: int
    score: float
    text: str | None = None


class RerankResponse(_Response):
    """A rerank answer (``/rerank`` on a BEI reranker): ``data`` as the server ordered it."""

    data: list[RerankScore]
    object: str | None = None


class _OpenAIRequest(BaseModel):
    """OpenAI request bodies: known fields are checked, other OpenAI fields (``top_p``, ``stop``...) pass through."""

    model_config = ConfigDict(extra="allow")


class ChatMessageInput(BaseModel):
    """A message sent to a chat model."""

    model_config = ConfigDict(extra="allow")
    role: str = Field(min_length=1)
    content: str | list[Any] | None = None


class ChatCompletionRequest(_OpenAIRequest):
    """A chat completion request (``stream`` is refused: the provider reads whole answers)."""

    messages: list[ChatMessageInput] = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    stream: bool | None = None

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, v: bool | None) -> bool | None:
        if v:
            raise ValueError("stream=True is not supported: the provider reads whole answers")
        return v


class EmbeddingsRequest(_OpenAIRequest):
    """An embeddings request: ``input`` is one non-empty string or a non-empty list of them."""

    input: str | list[str]
    model: str | None = None
    encoding_format: str | None = Field(default=None, pattern="^(float|base64)$")
    dimensions: int | None = Field(default=None, ge=1)

    @field_validator("input")
    @classmethod
    def _texts(cls, v: str | list[str]) -> str | list[str]:
        """At least one text, none empty (OpenAI and text-embeddings-inference refuse an empty one)."""
        texts = [v] if isinstance(v, str) else v
        if not texts:
            raise ValueError("give at least one text")
        empty = next((i for i, t in enumerate(texts) if not t), None)
        if empty is not None:
            raise ValueError(f"text {empty} is empty: every text must be a non-empty string")
        return v


class RerankRequest(_OpenAIRequest):
    """A rerank request (BEI's ``/rerank``)."""

    query: str
    texts: list[str] = Field(min_length=1)
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool = False
    truncation_direction: str = Field(default="Right", pattern="^(Left|Right)$")
    model: str | None = None


class TrainingProject(_Response):
    """A training project (``latest_job`` is its most recently created job, when Baseten includes it)."""

    id: str
    name: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    team_name: str | None = None
    latest_job: TrainingJob | None = None


class TrainingJob(_Response):
    """A training job."""

    id: str
    current_status: str | None = None
    training_project_id: str | None = None
    name: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    error_message: str | None = None
    instance_type: dict[str, Any] | None = None
    training_project: TrainingProject | None = None
    #: ``SYNCING`` | ``COMPLETED`` (``None`` before the job has checkpoints to sync): deploy once COMPLETED.
    checkpoint_sync_status: str | None = None


class TrainingCheckpoint(_Response):
    """One checkpoint of a training job."""

    checkpoint_id: str
    created_at: str | None = None
    checkpoint_type: str | None = None
    size_bytes: int | None = None
    base_model: str | None = None
    lora_adapter_config: dict[str, Any] | None = None
    training_job_id: str | None = None
    #: ``SYNCING`` or ``COMPLETE`` (Baseten's docs; ``COMPLETED`` is read as the same).
    sync_status: str | None = None


class TrainingCheckpointFiles(_Response):
    """One page of presigned checkpoint file URLs."""

    presigned_urls: list[dict[str, Any]] = Field(default_factory=list)
    next_page_token: int | str | None = None
    total_count: int | None = None


class TrainingLogLine(LogLine):
    """One line of a training job's logs."""


class TrainingMetrics(_Response):
    """Metrics of a training job (shape varies; see Baseten's docs)."""


class TrainingDownload(_Response):
    """Presigned URLs of a training job's artifacts."""

    artifact_presigned_urls: list[Any] = Field(default_factory=list)


# -- deploying a model over REST ---------------------------------------------------------------------------
class UploadCredentials(_Response):
    """Short-lived AWS credentials for one model archive upload (``AWSCredentialsV1``); never shown in a repr."""

    aws_access_key_id: str = Field(repr=False)
    aws_secret_access_key: str = Field(repr=False)
    aws_session_token: str = Field(repr=False)

    @field_validator("aws_secret_access_key", "aws_session_token")
    @classmethod
    def _mask(cls, value: str) -> str:
        from airflow_provider_baseten.client.redact import register_secret

        register_secret(value)  # kept out of logs and error messages from now on
        return value


class ModelUpload(_Response):
    """Where to upload a model archive (``PrepareModelUploadResponseV1``).

    ``creds``, ``s3_bucket`` and ``s3_key`` are ``None`` after a dry run; ``s3_key`` is also ``None`` when
    Baseten builds the model from its config alone (nothing to upload).
    """

    creds: UploadCredentials | None = Field(default=None, repr=False)
    s3_bucket: str | None = None
    s3_key: str | None = None
    s3_region: str | None = None


class CreatedDeployment(_Response):
    """A new deployment and its model (``CreatedModelDeploymentV1``).

    ``deployment`` is ``None`` only when an ambiguous create was reconciled by finding the new model by
    name: :meth:`~airflow_provider_baseten.hooks.baseten.BasetenHook.deploy_model` then looks it up.
    """

    model: Model
    deployment: Deployment | None = None


class LlmModelHandle(_Response):
    """The answer to a BIS-LLM deploy: the model, its new deployment (``version_id``) and its inference host.

    After an ambiguous failure reconciled by the model's name, ``version_id`` and ``hostname`` are ``None``.
    """

    model_id: str
    version_id: str | None = None
    hostname: str | None = None
    instance_type_name: str | None = None


class DeployResult(_Response):
    """What :meth:`~airflow_provider_baseten.hooks.baseten.BasetenHook.deploy_model` did.

    ``deployment`` is ``None`` after a dry run (``dry_run=True``: validated only, nothing created).
    """

    model_id: str | None = None
    deployment_id: str | None = None
    model: Model | None = None
    deployment: Deployment | None = None
    dry_run: bool = False
    uploaded_bytes: int = 0
    s3_key: str | None = None


# -- request options (validated before anything is sent) ----------------------------------------------
# -- the caller, cost and capacity ----------------------------------------------------------------------------
class UserInfo(_Response):
    """The user an API key belongs to (``users/me``)."""

    user_id: str
    email: str | None = None
    name: str | None = None
    workspace_name: str | None = None


class Team(_Response):
    """A team of the workspace; ``default`` is the team calls without ``team_id=`` apply to."""

    id: str
    name: str
    default: bool = False
    created_at: str | None = None


class EnvironmentGroupUser(_Response):
    """A user granted manage access to an environment group."""

    user_id: str
    email: str | None = None
    name: str | None = None


class EnvironmentGroupAccess(_Response):
    """Who may manage an environment group: anyone (``is_restricted`` false) or only ``users``."""

    is_restricted: bool
    users: list[EnvironmentGroupUser] = Field(default_factory=list)


class EnvironmentGroup(_Response):
    """The environments of one name (e.g. ``production``) across a team's models and chains, and who may manage
    them."""

    name: str
    team_id: str
    team_name: str | None = None
    manage_access: EnvironmentGroupAccess


class UserPage(_Response):
    """One page of the workspace's users: pass ``cursor`` to ``list_users`` for the next while ``has_more``."""

    items: list[UserInfo]
    has_more: bool = False
    cursor: str | None = None


class ModelApiRateLimit(_Response):
    """A Model API rate limit: ``threshold`` requests or tokens (``type``) per ``unit`` (SECOND or MINUTE)."""

    type: str
    unit: str
    threshold: int


class ModelApi(_Response):
    """A Model API (a shared model by name): its ``invoke_url``, context length and USD per million tokens."""

    name: str
    display_name: str | None = None
    description: str | None = None
    model_family: str | None = None
    release_date: str | None = None
    invoke_url: str | None = None
    context_length: int | None = None
    cost_per_million_input_tokens: Decimal | None = None
    cost_per_million_output_tokens: Decimal | None = None
    rate_limits: list[ModelApiRateLimit] = Field(default_factory=list)
    org_details: dict[str, Any] | None = None  # {added_at, last_used_at} once the workspace added it


class ModelApiPage(_Response):
    """One page of Model APIs: pass ``cursor`` to ``list_model_apis`` for the next while ``has_more``."""

    items: list[ModelApi]
    has_more: bool = False
    cursor: str | None = None


class InstanceType(_Response):
    """A Baseten instance type: its id (as in a deployment's ``instance_type_name``), CPU, memory and GPUs."""

    id: str
    name: str
    memory_limit_mib: int
    millicpu_limit: int
    gpu_count: int
    gpu_type: str | None = None
    gpu_memory_limit_mib: int | None = None


class InstanceTypePrice(_Response):
    """An instance type and its price in USD **per minute** (Baseten's unit), exact as a ``Decimal``."""

    instance_type: InstanceType
    price: Decimal

    @property
    def price_per_hour(self) -> Decimal:
        """The price in USD per hour."""
        return self.price * 60


class BillableResource(_Response):
    """What a usage item bills: a deployment, a training job or a chainlet (``id`` is its id)."""

    id: str
    kind: str  # MODEL_DEPLOYMENT, TRAINING_JOB or CHAINLET (an open string: Baseten may add kinds)
    name: str | None = None
    model_name: str | None = None
    is_deleted: bool = False
    instance_type: str | None = None
    environment_name: str | None = None


class DailyUsage(_Response):
    """One day of a usage item. Dedicated items have ``minutes`` and ``inference_requests``, training items
    ``minutes``, Model APIs items the token counts."""

    date: str
    subtotal: Decimal
    minutes: int | None = None
    inference_requests: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None


class DeploymentUsage(_Response):
    """A dedicated deployment's (or chainlet's) usage over the range, with its days."""

    billable_resource: BillableResource
    subtotal: Decimal
    minutes: int
    inference_requests: int
    daily: list[DailyUsage] = Field(default_factory=list)


class TrainingJobUsage(_Response):
    """A training job's usage over the range, with its days."""

    billable_resource: BillableResource
    subtotal: Decimal
    minutes: int
    daily: list[DailyUsage] = Field(default_factory=list)


class ModelApiUsage(_Response):
    """A Model API's usage over the range (tokens), with its days."""

    model_name: str
    model_family: str | None = None
    subtotal: Decimal
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    daily: list[DailyUsage] = Field(default_factory=list)


class DedicatedUsage(_Response):
    """Dedicated deployments' usage: USD ``subtotal`` less ``credits_used`` is ``total``."""

    subtotal: Decimal
    credits_used: Decimal
    total: Decimal
    minutes: int
    breakdown: list[DeploymentUsage] = Field(default_factory=list)


class TrainingUsage(_Response):
    """Training jobs' usage: USD ``subtotal`` less ``credits_used`` is ``total``."""

    subtotal: Decimal
    credits_used: Decimal
    total: Decimal
    minutes: int
    breakdown: list[TrainingJobUsage] = Field(default_factory=list)


class ModelApisUsage(_Response):
    """Model APIs' usage: USD ``subtotal`` less ``credits_used`` is ``total``."""

    subtotal: Decimal
    credits_used: Decimal
    total: Decimal
    breakdown: list[ModelApiUsage] = Field(default_factory=list)


class UsageSummary(_Response):
    """The billing usage summary of a date range (at most 31 days). Each part is ``None`` when unused.

    Money is ``Decimal`` USD (Baseten sends a number or a decimal string), so sums are exact.
    """

    dedicated_usage: DedicatedUsage | None = None
    training_usage: TrainingUsage | None = None
    model_apis_usage: ModelApisUsage | None = None

    @property
    def total(self) -> Decimal:
        """The USD total of the three parts (after credits)."""
        parts = (self.dedicated_usage, self.training_usage, self.model_apis_usage)
        return sum((p.total for p in parts if p is not None), Decimal(0))


class TrainingGpuCapacity(_Response):
    """One GPU type's training capacity: jobs may use up to ``limit`` GPUs, ``usage_count`` are in use.

    ``team_id`` and ``team_name`` are set on the per-team entries.
    """

    gpu_type: str
    baseline: int
    limit: int
    usage_count: int
    team_id: str | None = None
    team_name: str | None = None

    @property
    def available(self) -> int:
        """GPUs of this type a new job could get now (``limit - usage_count``, never negative)."""
        return max(self.limit - self.usage_count, 0)


class TrainingQueueContext(_Response):
    """Why a training job waited in PENDING: the GPU pool it was gated by and what held that pool.

    ``released_at`` and ``pending_seconds`` are ``None`` while the job is still PENDING. The nested lists keep
    Baseten's shapes (dicts): ``active_at_submit`` (jobs holding GPUs when it was submitted),
    ``pending_ahead_at_submit`` and ``events`` (their status changes in the window).
    """

    target_job_id: str
    target_job_name: str | None = None
    gpu_type: str
    requested_gpus: int
    submitted_at: str
    released_at: str | None = None
    pending_seconds: int | None = None
    org_capacity: dict[str, Any] | None = None
    team_capacity: dict[str, Any] | None = None
    active_at_submit: list[dict[str, Any]] = Field(default_factory=list)
    pending_ahead_at_submit: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    events_window_end: str | None = None


class TrainingCapacity(_Response):
    """Training GPU capacity of the workspace (and per team): why a job may wait in PENDING."""

    gpu_capacities: list[TrainingGpuCapacity]
    team_gpu_capacities: list[TrainingGpuCapacity] = Field(default_factory=list)


class AutoscalingSettingsUpdate(_Options):
    """Autoscaling fields to change. Only the fields given are sent; every one is range-checked."""

    min_replica: int | None = Field(default=None, ge=0, le=1000)
    max_replica: int | None = Field(default=None, ge=1, le=1000)
    autoscaling_window: int | None = Field(default=None, ge=10, le=3600)
    scale_down_delay: int | None = Field(default=None, ge=0, le=86400)
    concurrency_target: int | None = Field(default=None, ge=1, le=100000)
    target_utilization_percentage: int | None = Field(default=None, ge=1, le=100)
    target_in_flight_tokens: int | None = Field(default=None, ge=1)
    max_scale_down_rate: int | None = Field(default=None, ge=1, le=50)

    @field_validator("max_replica")
    @classmethod
    def _min_le_max(cls, v: int | None, info: ValidationInfo) -> int | None:
        # A field validator (not a model validator) so the error names a field: max_replica.
        low = info.data.get("min_replica")
        if v is not None and low is not None and low > v:
            raise ValueError(f"max_replica ({v}) must not be below min_replica ({low})")
        return v

    def body(self) -> dict[str, Any]:
        """The JSON body: only the fields that were set."""
        return self.model_dump(exclude_none=True)


class InferenceRetryConfig(_Options):
    """How Baseten retries an async request's inference."""

    max_attempts: int | None = Field(default=None, ge=1, le=10)
    initial_delay_ms: int | None = Field(default=None, ge=0, le=10000)
    max_delay_ms: int | None = Field(default=None, ge=0, le=60000)


class AsyncPredictOptions(_Options):
    """Options of an async predict, checked against Baseten's documented ranges."""

    webhook_endpoint: str | None = None
    priority: int | None = Field(default=None, ge=0, le=2)
    max_time_in_queue_seconds: int | None = Field(default=None, ge=10, le=259200)
    inference_retry_config: InferenceRetryConfig | None = None

    @field_validator("webhook_endpoint")
    @classmethod
    def _webhook_url(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith("https://") or v.startswith("http://")):
            raise ValueError("webhook_endpoint must be an https:// URL")
        return v

    def body(self) -> dict[str, Any]:
        """The option fields of the async predict body (those that were set)."""
        return self.model_dump(exclude_none=True)


TrainingProject.model_rebuild()  # latest_job refers to TrainingJob, defined after it

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ASYNC_PAYLOAD_LIMIT = 256 * 1024

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any, where: str) -> M:
    """Validate a response into ``model``; a shape error becomes a short :class:`BasetenResponseError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BasetenResponseError(
            f"Baseten's answer to {where} does not have the expected shape: {_first_error(exc)}",
            body_snippet=redact(str(data)[:300]),
        ) from None


def parse_list(model: type[M], data: Any, key: str, where: str) -> list[M]:
    """``data[key]`` (or ``data`` itself when the gateway returns a bare list) as a list of ``model``."""
    items = data.get(key) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise BasetenResponseError(
            f"Baseten's answer to {where} has no {key!r} list.", body_snippet=redact(str(data)[:300])
        )
    return [parse(model, item, where) for item in items]


def options(model: type[M], values: dict[str, Any]) -> M:
    """Validate user options into ``model``; a bad value becomes a :class:`BasetenValidationError` naming it."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or None
        raise BasetenValidationError(f"Invalid {field or 'option'}: {_first_error(exc)}", field=field) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc + ': ' if loc else ''}{err.get('msg')}{more}"


__all__ = [
    "ASYNC_ACTIVE_STATES",
    "ASYNC_PAYLOAD_LIMIT",
    "ASYNC_STATUS_UNKNOWN",
    "ASYNC_TERMINAL_STATES",
    "DEPLOYMENT_FAILED_STATES",
    "LOG_LEVELS",
    "PROMOTION_ACTIVE_STATES",
    "TRAINING_ACTIVE_STATES",
    "TRAINING_FAILED_STATES",
    "TRAINING_TERMINAL_STATES",
    "ActivationResult",
    "ApiKey",
    "ApiKeyType",
    "AsyncCancelResult",
    "AsyncPredictOptions",
    "AsyncPredictResult",
    "AsyncQueueStatus",
    "AsyncRequest",
    "AsyncRequestError",
    "AsyncRequestStatus",
    "AutoscalingSettings",
    "AutoscalingSettingsUpdate",
    "BillableResource",
    "CacheFile",
    "Chain",
    "ChainDeployment",
    "ChainEnvironment",
    "Chainlet",
    "ChainletEnvironmentSettings",
    "ChainletInstanceTypeUpdate",
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessage",
    "ChatMessageInput",
    "CreatedApiKey",
    "CreatedDeployment",
    "DailyUsage",
    "DedicatedUsage",
    "DeployResult",
    "Deployment",
    "DeploymentConfig",
    "DeploymentDownload",
    "DeploymentMetrics",
    "DeploymentStatus",
    "DeploymentUsage",
    "Embedding",
    "EmbeddingsRequest",
    "EmbeddingsResponse",
    "Environment",
    "EnvironmentGroup",
    "EnvironmentGroupAccess",
    "EnvironmentGroupUser",
    "InProgressPromotion",
    "InferenceRetryConfig",
    "InstanceType",
    "InstanceTypePrice",
    "LlmModelHandle",
    "LogLine",
    "MetricDescriptor",
    "MetricValueSet",
    "Model",
    "ModelApi",
    "ModelApiPage",
    "ModelApiRateLimit",
    "ModelApiUsage",
    "ModelApisUsage",
    "ModelUpload",
    "OkResult",
    "Promotion",
    "PromotionStatus",
    "RerankRequest",
    "RerankResponse",
    "RerankScore",
    "RetryDeploymentResult",
    "Secret",
    "SignalResult",
    "StatusMessage",
    "Team",
    "TokenUsage",
    "Tombstone",
    "TrainingCacheSummary",
    "TrainingCapacity",
    "TrainingCheckpoint",
    "TrainingCheckpointFiles",
    "TrainingDownload",
    "TrainingGpuCapacity",
    "TrainingJob",
    "TrainingJobStatus",
    "TrainingJobUsage",
    "TrainingLogLine",
    "TrainingMetrics",
    "TrainingProject",
    "TrainingQueueContext",
    "TrainingUsage",
    "UploadCredentials",
    "UsageSummary",
    "UserInfo",
    "UserPage",
    "WebhookStatus",
]


def created_epoch(obj: Any) -> float:
    """``obj.created_at`` as epoch seconds (``-inf`` when unreadable); a timestamp without a zone is UTC."""
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(str(obj.created_at).replace("Z", "+00:00"))
    except ValueError:
        return float("-inf")
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
