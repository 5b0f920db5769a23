"""Operators for OpenAI-compatible inference (embeddings, chat completions) and chains.

Why operators of their own rather than modes of :class:`PredictOperator`: each takes the arguments of its
kind of call (``texts`` and ``batch_size``, ``messages`` and ``max_tokens``, a chain's ``chain_id``), which a
``mode=`` switch would leave meaningless half the time, and returns its own shape (vectors, completions,
chain outputs). They *are* ``PredictOperator`` s underneath: the same batch options and guarantees
(``max_concurrency``, ``on_error``, ``output_path`` + ``resume`` that survive ``kill -9``, the error budget,
progress logs, JSONL inputs checked before anything is sent), only the call differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_baseten.client.checks import check_packing, model_apis_route
from airflow_provider_baseten.operators.inference import _NOTSET, PREDICT_FIELDS, PredictOperator


class _NamedInputs(PredictOperator):
    """A :class:`PredictOperator` whose inputs have names of their own (``input_names``, e.g. ``text`` /
    ``texts``): stored and templated under them, so the Rendered Template view shows what the author wrote.
    ``model_input`` / ``model_inputs``, which :class:`PredictOperator`'s code (and a subclass's) reads, are
    the same values under the generic names."""

    @property
    def model_input(self) -> Any:
        """The one input, stored as ``input_names[0]``."""
        return getattr(self, self.input_names[0])

    @model_input.setter
    def model_input(self, value: Any) -> None:
        setattr(self, self.input_names[0], value)

    @property
    def model_inputs(self) -> Any:
        """The batch, stored as ``input_names[1]``."""
        return getattr(self, self.input_names[1])

    @model_inputs.setter
    def model_inputs(self, value: Any) -> None:
        setattr(self, self.input_names[1], value)


class _OpenAIOperator(_NamedInputs):
    """What the OpenAI-compatible operators share: the route rule of the hook's methods (``model_apis``)."""

    model: str | None
    model_apis: bool | None

    def _set_route(self, model: str | None, model_apis: bool | None) -> None:
        """Keep ``model`` / ``model_apis``; what cannot go together fails when the DAG is parsed.

        The hook's rule (:func:`~airflow_provider_baseten.client.checks.model_apis_route`), asked of the
        arguments alone, so the task routes the same way on every connection.
        """
        model_apis_route(model, model_apis, **self._target())
        if model_apis:
            given = [k for k in ("wake_first", "scale_for_batch") if getattr(self, k)]
            if given:
                from airflow_provider_baseten.exceptions import BasetenValidationError

                raise BasetenValidationError(
                    f"model_apis=True calls Baseten's shared Model APIs: {', '.join(given)} (about a deployment of "
                    "yours) do not apply; drop them or pass model_apis=False.",
                    field="model_apis",
                )
        self.model = model
        self.model_apis = model_apis

    def _route(self) -> dict[str, Any]:
        """The hook's routing arguments: the deployment target and ``model_apis``."""
        return {**self._target(), "model_apis": self.model_apis}

    def _calls_a_model(self) -> bool:
        """On Model APIs there is no model of yours to link to (nor to report in lineage)."""
        return not self.model_apis


class EmbeddingsOperator(_OpenAIOperator):
    """Embed one ``text`` (returns its vector) or many ``texts`` (packed ``batch_size`` per request).

    On a model deployment (``model_id`` / ``environment`` / ``deployment_id``, or the connection's model)
    through its ``/sync/v1/embeddings`` route, or on Baseten's Model APIs with ``model_apis=True``. ``model=``
    alone (no target, no ``model_apis``) is refused when the DAG is parsed rather than guessed, on every
    connection: see :mod:`airflow_provider_baseten.hooks._openai`. A batch returns
    one vector per text in input order (or, with ``output_path``, a summary with the summed token ``usage``).
    Every other option is :class:`PredictOperator`'s.

    :param text: One text. Or ``texts``: a list, an ``XComArg``, a JSONL file of JSON strings, or rows
        (a Parquet file, dicts) with ``text_column``.
    :param model: The Model APIs model, or the served model name on a deployment.
    :param model_apis: ``True``: Baseten's Model APIs (``model`` required; no deployment target, ``wake_first``
        or ``scale_for_batch``); ``False`` or ``None`` (the default): the deployment.
    :param batch_size: Texts per request (1-1024), checked when the DAG is parsed.
    :param max_chars_per_request: Also start a new request before this many characters (a longer text goes alone).
    :param dimensions: Vector length, for models that can shorten theirs.
    :param text_column: Where the text is when ``texts`` holds rows (a Parquet file, or dicts): that column
        or key. A Parquet file with one column needs none; with several, leaving it out is an error before
        any request, naming the columns.
    """

    input_unit = "texts"
    template_fields: Sequence[str] = ("text", "texts", *PREDICT_FIELDS, "model")
    template_fields_renderers = {"text": "json", "texts": "json"}
    input_names = ("text", "texts")
    text: Any
    texts: Any

    def __init__(
        self,
        *,
        text: Any = _NOTSET,
        texts: Any = None,
        model: str | None = None,
        model_apis: bool | None = None,
        batch_size: int = 32,
        max_chars_per_request: int | None = None,
        dimensions: int | None = None,
        text_column: str | None = None,
        **kwargs: Any,
    ) -> None:
        if text_column is not None and (not isinstance(text_column, str) or not text_column):
            raise ValueError(f"text_column must be a column name, got {text_column!r}")
        if isinstance(text, (list, tuple, dict)):
            raise ValueError("text is one string (its vector is returned); give many texts as texts=")
        super().__init__(model_input=text, model_inputs=texts, **kwargs)
        check_packing(batch_size, max_chars_per_request)  # at DAG parse time
        self._set_route(model, model_apis)
        self.batch_size = batch_size
        self.max_chars_per_request = max_chars_per_request
        self.dimensions = dimensions
        self.text_column = text_column
        self._rows_column: str | None = None  # with passthrough_columns: the hook reads each row's text

    def _batch_inputs(self) -> tuple[Any, int]:
        """The texts: a Parquet file's (or dict rows') ``text_column``, checked against the file's columns first."""
        from airflow_provider_baseten.batch_io import is_parquet, parquet_columns
        from airflow_provider_baseten.exceptions import BasetenValidationError
        from airflow_provider_baseten.operators.inference import _is_path

        column = self.text_column
        src = self.texts
        if _is_path(src) and is_parquet(src):
            columns = parquet_columns(src)
            if column is None and len(columns) == 1:
                column = columns[0]
            if column not in columns:
                raise BasetenValidationError(
                    f"{src}: its rows have the columns {columns}; name the one that holds the texts with "
                    f"text_column= (got {column!r}).",
                    field="text_column",
                )
        inputs, total = super()._batch_inputs()
        if column is None:
            return inputs, total
        if self._input_fingerprint is not None:  # other texts of the same rows are other inputs
            self._input_fingerprint = {**self._input_fingerprint, "text_column": column}
        texts = (_column(row, column, i) for i, row in enumerate(inputs))
        if self.passthrough_columns:  # the rows go to the hook, which takes each one's text and columns
            if isinstance(inputs, list):
                list(texts)  # a list is checked before sending
            self._rows_column = column
            return inputs, total
        return (list(texts) if isinstance(inputs, list) else texts), total  # a list is checked before sending

    def _one(self, hook: Any) -> Any:
        if not isinstance(self.text, str):  # e.g. an XComArg that pulled a list
            from airflow_provider_baseten.exceptions import BasetenValidationError

            kind = type(self.text).__name__
            raise BasetenValidationError(f"text must be one string, got {kind}: give many as texts=.", field="text")
        route = self._route()
        answer = hook.embeddings(self.text, model=self.model, dimensions=self.dimensions, **route, **self._cached())
        return answer.vectors()[0]

    def _many(self, hook: Any, inputs: Any, **batch: Any) -> Any:
        packing: dict[str, Any] = {"batch_size": self.batch_size, "max_chars_per_request": self.max_chars_per_request}
        packing["dimensions"] = self.dimensions
        if self._rows_column is not None:
            packing["text_column"] = self._rows_column
        return hook.embed_batch(inputs, model=self.model, **self._route(), **packing, **self._cached(), **batch)


def _column(row: Any, column: str, index: int) -> Any:
    """The text of one row (``text_column``)."""
    if not isinstance(row, dict) or column not in row:
        from airflow_provider_baseten.exceptions import BasetenValidationError

        raise BasetenValidationError(f"texts[{index}] has no {column!r} (text_column).", field="text_column")
    return row[column]


class ChatCompletionsOperator(_OpenAIOperator):
    """One chat completion (``messages``) or a batch of them (``requests``: ``{"messages": [...], ...}`` each).

    On a deployment's ``/sync/v1/chat/completions`` or on Model APIs (``model_apis``: as
    :class:`EmbeddingsOperator`). Returns the whole
    completion (``choices``, ``usage``...) or, for a batch, the completions in input order (with
    ``output_path``, a summary with the summed token ``usage``). Every other option is :class:`PredictOperator`'s.

    :param options: OpenAI fields for every request (``max_tokens``, ``temperature``...).
    :param model: The Model APIs model, or the served model name on a deployment.
    :param model_apis: ``True``: Baseten's Model APIs; ``False`` or ``None`` (the default): the deployment
        (as :class:`EmbeddingsOperator`).
    """

    input_unit = "prompts"
    cacheable = False
    template_fields: Sequence[str] = ("messages", "requests", *PREDICT_FIELDS, "model", "options")
    template_fields_renderers = {"messages": "json", "requests": "json", "options": "json"}
    input_names = ("messages", "requests")
    messages: Any
    requests: Any

    def __init__(
        self,
        *,
        messages: Any = _NOTSET,
        requests: Any = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        model_apis: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_input=messages, model_inputs=requests, **kwargs)
        self._set_route(model, model_apis)
        self.options = options

    def _one(self, hook: Any) -> Any:
        answer = hook.chat_completions(self.messages, model=self.model, options=self.options, **self._route())
        return answer.model_dump(exclude_none=True)

    def _many(self, hook: Any, inputs: Any, **batch: Any) -> Any:
        return hook.chat_completions_batch(inputs, model=self.model, options=self.options, **self._route(), **batch)


class RunChainOperator(_NamedInputs):
    """Call a chain synchronously: one ``chain_input`` (returns its output) or a batch of ``chain_inputs``.

    Each input is the entrypoint's ``run_remote`` arguments by name. To submit asynchronously, use
    ``AsyncPredictOperator(chain_id=...)``. Every other option is :class:`PredictOperator`'s (no ``wake_first``,
    no ``scale_for_batch``: both act on a model deployment).

    :param chain_id: The chain.
    :param environment: ``production`` (default), ``development`` or another environment of the chain.
    :param deployment_id: One chain deployment.
    """

    input_unit = "chain inputs"
    cacheable = False
    template_fields: Sequence[str] = ("chain_input", "chain_inputs", *PREDICT_FIELDS, "chain_id")
    template_fields_renderers = {"chain_input": "json", "chain_inputs": "json"}
    input_names = ("chain_input", "chain_inputs")
    chain_input: Any
    chain_inputs: Any

    def __init__(self, *, chain_id: str, chain_input: Any = _NOTSET, chain_inputs: Any = None, **kwargs: Any) -> None:
        if kwargs.get("wake_first") or kwargs.get("model_id") is not None:
            raise ValueError("RunChainOperator calls a chain: model_id and wake_first do not apply.")
        if kwargs.get("scale_for_batch") is not None:
            from airflow_provider_baseten.exceptions import BasetenValidationError

            # The lease scales a model deployment (the connection's model): never the chain's chainlets.
            raise BasetenValidationError(
                "RunChainOperator calls a chain: scale_for_batch scales a model deployment and would raise the "
                "replicas of the connection's model, not the chain's. Drop it; set the chainlets' min_replica "
                "in the chain's own config instead.",
                field="scale_for_batch",
            )
        super().__init__(model_input=chain_input, model_inputs=chain_inputs, **kwargs)
        self.chain_id = chain_id

    def _calls_a_model(self) -> bool:
        """A chain, not a model: no model link."""
        return False

    def _where(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "environment": self.environment, "deployment_id": self.deployment_id}

    def _one(self, hook: Any) -> Any:
        return hook.run_chain(self.chain_input, **self._where())

    def _many(self, hook: Any, inputs: Any, **batch: Any) -> Any:
        return hook.run_chain_batch(inputs, **self._where(), **batch)


__all__ = ["ChatCompletionsOperator", "EmbeddingsOperator", "RunChainOperator"]
