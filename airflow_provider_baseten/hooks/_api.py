"""How a hook method is made: a builder says what to call (:class:`_Call`), :func:`_api` sends it.

Each endpoint method is written once, as a *builder* that validates its arguments and returns a
:class:`_Call`. :func:`_api` turns it into the public sync method and :func:`_twin` into its ``a``-prefixed
async twin, so the two cannot drift apart and a type checker sees both with the builder's parameters.
Creates also carry a :class:`_Reconcile`: how to find what an ambiguous failure may have made.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, cast, overload

if TYPE_CHECKING:
    from airflow_provider_baseten._transport import Transport
    from airflow_provider_baseten.hooks._core import _HookCore

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")


@dataclass
class _Call(Generic[T]):
    """What a builder asks for: an endpoint, its parameters, and how to read the answer.

    ``reconcile`` is for creates: when the answer leaves it unknown whether the object was created
    (``BasetenError.maybe_created``), the hook sends ``reconcile.lookup`` and ``reconcile.pick`` finds the
    object in its answer, instead of creating it a second time.
    """

    name: str
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] | None = None
    body: Any = None
    model_id: str | None = None
    parse: Callable[[Any], T] = lambda data: data
    reconcile: _Reconcile | None = None


@dataclass
class _Reconcile:
    """How to find what an ambiguous create may have made.

    ``before`` is sent ahead of the create (a snapshot of what already exists); after an ambiguous failure
    ``lookup`` is sent and ``pick(lookup answer, before answer)`` returns the object the create made, or
    ``None``. An object that was there before the create is never taken for the one it made.
    """

    before: _Call[Any]
    lookup: _Call[Any]
    pick: Callable[[Any, Any], Any]
    what: str


def _reconciled(hook: _HookCore, call: _Call[Any], exc: Exception, found: Any) -> Any:
    """The object an ambiguous create made, or the create's own error when the lookup found none."""
    what = call.reconcile.what if call.reconcile else "object"
    if found is None:
        hook.log.warning("Baseten %s: the lookup found no %s; not sending the create again.", call.name, what)
        raise exc
    hook.log.warning(
        "Baseten %s failed ambiguously (%s), but the %s it created exists: using it instead of creating another.",
        call.name,
        getattr(exc, "status_code", None) or type(exc).__name__,
        what,
    )
    return found


def _no_snapshot(hook: _HookCore, call: _Call[Any], exc: Exception) -> None:
    """Log that there is no snapshot: without one an ambiguous create cannot be reconciled safely, so the
    caller drops ``call.reconcile`` and the create's error will be raised instead."""
    hook.log.warning(
        "Baseten %s: could not list what exists before the create (%s); sending it anyway.", call.name, exc
    )


def _lookup_failed(hook: _HookCore, call: _Call[Any], exc: Exception, lookup_exc: Exception) -> None:
    """A 404 from the lookup means "not there" (the caller goes on with nothing found); any other failure is
    logged and the create's error is raised."""
    if getattr(lookup_exc, "status_code", None) != 404:
        hook.log.warning("Baseten %s: the lookup after an ambiguous failure failed too: %s", call.name, lookup_exc)
        raise exc from None


class Endpoint(Protocol[P, T_co]):
    """What :func:`_api` makes, as a type checker sees it: on a hook, a method taking the builder's
    parameters (less ``self``) and returning what its :class:`_Call` parses to."""

    __wrapped__: Callable[..., _Call[Any]]

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Endpoint[P, T_co]: ...
    @overload
    def __get__(self, obj: object, owner: type[Any]) -> Callable[P, T_co]: ...


class AsyncEndpoint(Protocol[P, T_co]):
    """What :func:`_twin` makes: the same parameters, awaitable."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> AsyncEndpoint[P, T_co]: ...
    @overload
    def __get__(self, obj: object, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T_co]]: ...


# Each sync method made by :func:`_api` -> its async twin, for :func:`_twin` (filled at class creation).
_TWINS: dict[object, Callable[..., Any]] = {}


def _api(builder: Callable[Concatenate[Any, P], _Call[T]]) -> Endpoint[P, T]:
    """Make the public sync method from ``builder``; ``aname = _twin(name)`` declares its async twin."""

    def send(transport: Transport, call: _Call[Any]) -> Any:
        return transport.request(
            call.name, call.params, query=call.query, body=call.body, model_id=call.model_id, parse=call.parse
        )

    async def asend(transport: Transport, call: _Call[Any]) -> Any:
        return await transport.arequest(
            call.name, call.params, query=call.query, body=call.body, model_id=call.model_id, parse=call.parse
        )

    @functools.wraps(builder)
    def sync(self: _HookCore, *args: P.args, **kwargs: P.kwargs) -> T:
        transport = self.get_transport()
        call = builder(self, *args, **kwargs)
        before: Any = None
        if call.reconcile is not None:
            try:  # what exists already is never "what the create made"
                before = send(transport, call.reconcile.before)
            except Exception as snap_exc:
                _no_snapshot(self, call, snap_exc)
                call.reconcile = None
        try:
            return cast("T", send(transport, call))
        except Exception as exc:
            if call.reconcile is None or not getattr(exc, "maybe_created", False):
                raise
            try:
                found = call.reconcile.pick(send(transport, call.reconcile.lookup), before)
            except Exception as lookup_exc:
                _lookup_failed(self, call, exc, lookup_exc)
                found = None
            return cast("T", _reconciled(self, call, exc, found))

    async def asynchronous(self: _HookCore, *args: P.args, **kwargs: P.kwargs) -> T:
        transport = await self.aget_transport()
        call = builder(self, *args, **kwargs)
        before: Any = None
        if call.reconcile is not None:
            try:
                before = await asend(transport, call.reconcile.before)
            except Exception as snap_exc:
                _no_snapshot(self, call, snap_exc)
                call.reconcile = None
        try:
            return cast("T", await asend(transport, call))
        except Exception as exc:
            if call.reconcile is None or not getattr(exc, "maybe_created", False):
                raise
            try:
                found = call.reconcile.pick(await asend(transport, call.reconcile.lookup), before)
            except Exception as lookup_exc:
                _lookup_failed(self, call, exc, lookup_exc)
                found = None
            return cast("T", _reconciled(self, call, exc, found))

    asynchronous.__name__ = asynchronous.__qualname__ = "a" + builder.__name__
    asynchronous.__doc__ = f"Async twin of :meth:`{builder.__name__}` (same arguments, awaitable)."
    _sign_like(asynchronous, builder)
    _TWINS[sync] = asynchronous
    return cast("Endpoint[P, T]", sync)


def _params_of(
    sync: Callable[Concatenate[Any, P], Any],
) -> Callable[[Callable[..., R]], Callable[Concatenate[Any, P], R]]:
    """Give a hand-written async twin the parameters of its sync method, for type checkers and ``help()``.

    For the few twins that are not made by :func:`_twin` (they stream or run a batch), written with
    ``**kwargs``: one parameter list, the sync method's, with nothing to keep in step.
    """

    def apply(fn: Callable[..., R]) -> Callable[Concatenate[Any, P], R]:
        _sign_like(fn, sync)
        return fn

    return apply


def _sign_like(fn: Callable[..., Any], like: Callable[..., Any]) -> None:
    """Make ``inspect.signature(fn)`` (``help()``, IDEs that introspect) show ``like``'s parameters."""
    signature = inspect.signature(like).replace(return_annotation=inspect.Signature.empty)
    fn.__signature__ = signature  # type: ignore[attr-defined]  # typeshed lacks it; inspect documents it


def _twin(endpoint: Endpoint[P, T]) -> AsyncEndpoint[P, T]:
    """The async twin of a method made by :func:`_api` (declare it as ``aname = _twin(name)``)."""
    return cast("AsyncEndpoint[P, T]", _TWINS[endpoint])


# A job created up to this long before the call started still counts as "made by this call" when an
# ambiguous create is reconciled: it covers clock skew between the Airflow worker and Baseten.
RECONCILE_CLOCK_SKEW = 120.0


def _created_at(obj: Any) -> float:
    """``obj.created_at`` as epoch seconds (``-inf`` when unreadable); a timestamp without a zone is UTC."""
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(str(obj.created_at).replace("Z", "+00:00"))
    except ValueError:
        return float("-inf")
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _made_since(objs: list[Any], before_ids: set[str], started: float) -> list[Any]:
    """The objects that were not there before a create (``before_ids``) and were created since ``started``
    (less the clock-skew margin): the candidates for what an ambiguous create made."""
    return [o for o in objs if o.id not in before_ids and _created_at(o) >= started - RECONCILE_CLOCK_SKEW]


def _newest_named(name: str, started: float) -> Callable[[Any, Any], Any]:
    """A pick: the newest job called ``name`` among those :func:`_made_since` the create started."""

    def pick(jobs: list[Any], before: list[Any]) -> Any:
        mine = [j for j in _made_since(jobs, {j.id for j in before}, started) if j.name == name]
        return max(mine, key=_created_at) if mine else None

    return pick


def _name(what: str, name: Any, field: str) -> str:
    """``name`` if it is a usable name of a ``what`` (a non-empty printable string), else a validation error."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise BasetenValidationError(f"A {what} name must be a non-empty string, got {name!r}.", field=field)
    return name


def _one_named(items: list[Any], name: str, what: str, hint: str) -> Any:
    """The one item called ``name`` (None if none); several are an error naming their ids and ``hint``."""
    from airflow_provider_baseten.exceptions import BasetenError

    matches = [item for item in items if item.name == name]
    if len(matches) > 1:
        raise BasetenError(f"{len(matches)} {what} are named {name!r} (ids {[m.id for m in matches]}); {hint}")
    return matches[0] if matches else None


def _m() -> Any:  # lazy import keeps DAG parsing cheap
    from airflow_provider_baseten import models

    return models


def _wrapped(key: str, model: str, where: str) -> Callable[[Any], Any]:
    """A parser of ``{key: {...}}`` answers (or the bare object) into the model class named ``model``."""

    def parse(d: Any) -> Any:
        m = _m()
        return m.parse(getattr(m, model), d.get(key, d) if isinstance(d, dict) else d, where)

    return parse


def _v(name: str, value: Any) -> str:
    from airflow_provider_baseten._transport import validate_id

    return validate_id(name, value)
