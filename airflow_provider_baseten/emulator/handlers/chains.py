"""Chain management in the emulated API: chains, their deployments (one model deployment per chainlet, each
with its own build timeline and logs), environments with per-chainlet settings, and promotions on the clock.

A chain promotion runs the model promotion's timeline (:class:`~..objects.Promotion`): RELEASING, RAMPING_UP,
then the candidate serves. Baseten's chain API shows it only as the environment's ``candidate_deployment``; it
has no cancel, so a candidate deactivated mid-promotion ends it (FAILED: the environment keeps what it served).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_baseten.emulator.core import StateCore
from airflow_provider_baseten.emulator.objects import (
    CHAINLETS,
    DEFAULT_AUTOSCALING,
    FAILED_BUILDS,
    INSTANCE_TYPE,
    TEAM,
    ApiError,
    Chain,
    ChainDeployment,
    ChainEnvironment,
    Deployment,
    Promotion,
    iso,
)

_NOT_PROMOTABLE = ("INACTIVE", "DEACTIVATING", *FAILED_BUILDS, "FAILED", "BUILD_STOPPED")


class ChainManagementHandlers(StateCore):
    """Chain deployments, chainlet logs, chain environments and promotions. Handlers are ``_h_<endpoint name>``."""

    # -- objects -------------------------------------------------------------------------------------
    def _new_chain_deployment(
        self, chain: Chain, created: float, status: str, fail: str | None = None, dep_id: str | None = None
    ) -> ChainDeployment:
        """A chain deployment of :data:`CHAINLETS`; ``fail`` makes its last chainlet's first build end that way."""
        if fail is not None and fail not in FAILED_BUILDS:
            raise ApiError(422, f"fail must be one of {', '.join(FAILED_BUILDS)}")
        dep_id = dep_id or self.new_id()
        chainlets = {}
        for i, name in enumerate(CHAINLETS):
            last = i == len(CHAINLETS) - 1
            chainlet = Deployment(
                id=dep_id + "c" + str(i),  # seeded: chain123depc0, chain123depc1
                model_id=chain.id,
                name=name,
                created=created,
                status=status,
                fail_with=fail if last else None,
                failures_left=1 if fail and last else 0,
            )
            if status == "BUILDING":
                self._start_build(chainlet, self.clock.now())
            chainlets[name] = chainlet
        dep = ChainDeployment(dep_id, chain.id, created, chainlets, {n: str(INSTANCE_TYPE["id"]) for n in CHAINLETS})
        chain.deployments[dep.id] = dep
        return dep

    def _seed_chain(self, c: dict[str, Any], created: float) -> None:
        chain = Chain(c["id"], c.get("name", c["id"]), created)
        dep = self._new_chain_deployment(chain, created, "ACTIVE", dep_id=f"{chain.id}dep")
        dep.is_development = True
        for name in ("production", "staging"):
            chain.environments[name] = ChainEnvironment(name, chain.id, created, current_deployment_id=dep.id)
        self.chains[chain.id] = chain

    def _chain(self, chain_id: str) -> Chain:
        chain = self.chains.get(chain_id)
        if chain is None:
            raise ApiError(404, f"Chain {chain_id} not found")
        self._refresh_chain(chain, self.clock.now())
        return chain

    def _refresh_chain(self, chain: Chain, now: float) -> None:
        """Apply build timelines and finish (or fail) promotions whose time has come."""
        for dep in chain.deployments.values():
            dep.refresh(now)
        for env in chain.environments.values():
            p = env.promotion
            if p is None or p.status is not None:
                continue
            candidate = chain.deployments.get(p.deployment_id)
            if candidate is None or candidate.status() in _NOT_PROMOTABLE:  # deactivated or failed mid-way
                p.status = "FAILED"
                p.error_message = f"Chain deployment {p.deployment_id} is no longer deployable (emulated)."
            elif p.current(now) == "FAILED":
                p.status = "FAILED"
                p.error_message = f"Chain deployment {p.deployment_id} failed its health checks (emulated)."
                for chainlet in candidate.chainlets.values():
                    chainlet.log(p.release_end + p.paused_total, "ERROR", p.error_message, chainlet.replica)
            elif p.current(now) == "SUCCEEDED":
                p.status = "SUCCEEDED"
                previous, env.current_deployment_id = env.current_deployment_id, p.deployment_id
                serving = {e.current_deployment_id for e in chain.environments.values()}
                old = chain.deployments.get(previous or "")
                if p.scale_down_previous and old is not None and old.id not in serving:
                    for chainlet in old.chainlets.values():
                        chainlet.steps, chainlet.status = [], "SCALED_TO_ZERO"

    def _chain_dep(self, chain: Chain, dep_id: str) -> ChainDeployment:
        dep = chain.deployments.get(dep_id)
        if dep is None:
            raise ApiError(404, f"Chain deployment {dep_id} of chain {chain.id} not found")
        return dep

    def _chain_env(self, chain: Chain, name: str) -> ChainEnvironment:
        env = chain.environments.get(name)
        if env is None:
            raise ApiError(404, f"Environment {name} of chain {chain.id} not found")
        return env

    # -- JSON views ----------------------------------------------------------------------------------
    def _chain_json(self, chain: Chain) -> dict[str, Any]:
        return {
            "id": chain.id,
            "created_at": iso(chain.created),
            "name": chain.name,
            "deployments_count": len(chain.deployments),
            "team_name": TEAM,
        }

    def _chain_dep_json(self, chain: Chain, dep: ChainDeployment) -> dict[str, Any]:
        env = next((e.name for e in chain.environments.values() if e.current_deployment_id == dep.id), None)
        chainlets = []
        for name, c in dep.chainlets.items():
            live = c.status in ("ACTIVE", "UPDATING")
            chainlets.append(
                {
                    "id": c.id,
                    "name": name,
                    "autoscaling_settings": dict(c.autoscaling) if c.status != "BUILDING" else None,
                    "instance_type_name": dep.instance_types[name],
                    "active_replica_count": max(1, c.autoscaling.get("min_replica") or 0) if live else 0,
                    "status": c.status,
                }
            )
        return {
            "id": dep.id,
            "created_at": iso(dep.created),
            "chain_id": chain.id,
            "environment": env,
            "chainlets": chainlets,
            "status": dep.status(),
        }

    def _chainlet_settings_json(self, env: ChainEnvironment) -> list[dict[str, Any]]:
        return [
            {
                "chainlet_name": name,
                "autoscaling_settings": dict(s["autoscaling"]),
                "instance_type": {**INSTANCE_TYPE, "id": s["instance_type_id"], "name": s["instance_type_id"]},
            }
            for name, s in self._settings_of(env).items()
        ]

    def _settings_of(self, env: ChainEnvironment) -> dict[str, dict[str, Any]]:
        """The environment's settings for every chainlet (defaults for those never set)."""
        for name in CHAINLETS:
            env.chainlet_settings.setdefault(
                name, {"autoscaling": dict(DEFAULT_AUTOSCALING), "instance_type_id": INSTANCE_TYPE["id"]}
            )
        return env.chainlet_settings

    def _chain_env_json(self, chain: Chain, env: ChainEnvironment) -> dict[str, Any]:
        current = chain.deployments.get(env.current_deployment_id or "")
        p = env.promotion
        candidate = chain.deployments.get(p.deployment_id) if p and p.status is None else None
        return {
            "name": env.name,
            "created_at": iso(env.created),
            "chain_id": chain.id,
            "promotion_settings": dict(env.promotion_settings),
            "chainlet_settings": self._chainlet_settings_json(env),
            "current_deployment": self._chain_dep_json(chain, current) if current else None,
            "candidate_deployment": self._chain_dep_json(chain, candidate) if candidate else None,
        }

    # -- chains --------------------------------------------------------------------------------------
    def _h_list_chains(self, *_: Any) -> Any:
        return 200, {"chains": [self._chain_json(c) for c in self.chains.values()]}

    def _h_get_chain(self, params: dict[str, str], *_: Any) -> Any:
        return 200, self._chain_json(self._chain(params["chain_id"]))

    def _h_delete_chain(self, params: dict[str, str], *_: Any) -> Any:
        chain = self._chain(params["chain_id"])
        del self.chains[chain.id]
        return 200, {"id": chain.id, "deleted": True}

    # -- deployments ---------------------------------------------------------------------------------
    def _h_list_chain_deployments(self, params: dict[str, str], *_: Any) -> Any:
        chain = self._chain(params["chain_id"])
        return 200, {"deployments": [self._chain_dep_json(chain, d) for d in chain.deployments.values()]}

    def _h_get_chain_deployment(self, params: dict[str, str], *_: Any) -> Any:
        chain = self._chain(params["chain_id"])
        return 200, self._chain_dep_json(chain, self._chain_dep(chain, params["chain_deployment_id"]))

    def _h_delete_chain_deployment(self, params: dict[str, str], *_: Any) -> Any:
        chain = self._chain(params["chain_id"])
        dep = self._chain_dep(chain, params["chain_deployment_id"])
        for env in chain.environments.values():
            if env.current_deployment_id == dep.id or (
                env.promotion and env.promotion.status is None and env.promotion.deployment_id == dep.id
            ):
                raise ApiError(400, f"Chain deployment {dep.id} is in environment {env.name}; promote another first")
        del chain.deployments[dep.id]
        return 200, {"id": dep.id, "deleted": True, "chain_id": chain.id}

    def _h_deactivate_chain_deployment(self, params: dict[str, str], *_: Any) -> Any:
        chain = self._chain(params["chain_id"])
        dep = self._chain_dep(chain, params["chain_deployment_id"])
        for chainlet in dep.chainlets.values():
            chainlet.steps, chainlet.status = [], "INACTIVE"
        self._refresh_chain(chain, self.clock.now())  # a promotion of it ends now
        return 200, {"success": True}

    def _h_get_chainlet_logs(self, params: dict[str, str], query: dict[str, Any], *_: Any) -> Any:
        chain = self._chain(params["chain_id"])
        dep = self._chain_dep(chain, params["chain_deployment_id"])
        chainlet = next((c for c in dep.chainlets.values() if c.id == params["chainlet_id"]), None)
        if chainlet is None:
            raise ApiError(404, f"Chainlet {params['chainlet_id']} of chain deployment {dep.id} not found")
        return 200, self._logs(chainlet.logs, query)

    # -- environments --------------------------------------------------------------------------------
    def _h_list_chain_environments(self, params: dict[str, str], *_: Any) -> Any:
        chain = self._chain(params["chain_id"])
        return 200, {"environments": [self._chain_env_json(chain, e) for e in chain.environments.values()]}

    def _h_get_chain_environment(self, params: dict[str, str], *_: Any) -> Any:
        chain = self._chain(params["chain_id"])
        return 200, self._chain_env_json(chain, self._chain_env(chain, params["env_name"]))

    def _known_chainlet(self, name: Any) -> str:
        if name not in CHAINLETS:
            raise ApiError(400, f"Chainlet {name!r} does not exist in this chain")
        return str(name)

    def _h_create_chain_environment(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        chain = self._chain(params["chain_id"])
        name = body["name"]  # required by the spec: validated before this runs
        if name in chain.environments:
            raise ApiError(409, f"Environment {name} already exists")
        env = ChainEnvironment(name, chain.id, self.clock.now())
        self._promotion_settings(env, body.get("promotion_settings"))  # type: ignore[attr-defined]
        settings = self._settings_of(env)
        for entry in body.get("chainlet_settings") or []:
            chainlet = settings[self._known_chainlet(entry["chainlet_name"])]
            if entry.get("autoscaling_settings"):
                self._autoscaling(chainlet["autoscaling"], entry["autoscaling_settings"])  # type: ignore[attr-defined]
            chainlet["instance_type_id"] = entry.get("instance_type_id", "1x2")  # the spec's default
        chain.environments[name] = env
        return 200, self._chain_env_json(chain, env)

    def _h_update_chain_environment(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        chain = self._chain(params["chain_id"])
        env = self._chain_env(chain, params["env_name"])
        self._promotion_settings(env, body.get("promotion_settings"))  # type: ignore[attr-defined]
        return 200, {"ok": True}

    def _h_promote_to_chain_environment(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        chain = self._chain(params["chain_id"])
        env = self._chain_env(chain, params["env_name"])
        dep = self._chain_dep(chain, body["deployment_id"])
        now = self.clock.now()
        if dep.status() in _NOT_PROMOTABLE:
            raise ApiError(400, f"Chain deployment {dep.id} is {dep.status()} and cannot be promoted")
        if env.promotion and env.promotion.status is None:
            raise ApiError(400, f"A promotion into {env.name} is already in progress")
        if env.current_deployment_id == dep.id:
            raise ApiError(400, f"Chain deployment {dep.id} is already the {env.name} deployment")
        for chainlet in dep.chainlets.values():
            self._wake_deployment(chainlet, now)
        d = self.config.durations
        release_end = max(now, dep.ready_at(now) or now) + d.promotion_releasing
        scale_down = self._bool(body, "scale_down_previous_deployment")
        env.promotion = Promotion(
            dep.id, now, release_end, release_end + d.promotion_ramping, scale_down, fail=self.promotion_fail
        )
        self.submissions["chain_promotion"] += 1
        return 200, self._chain_dep_json(chain, dep)

    # -- chainlet settings ---------------------------------------------------------------------------
    def _h_update_chainlet_autoscaling_settings(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        chain = self._chain(params["chain_id"])
        env = self._chain_env(chain, params["env_name"])
        settings = self._settings_of(env)
        changed = False
        for entry in body["updates"]:
            name = self._known_chainlet(entry["chainlet_name"])
            _, result = self._autoscaling(settings[name]["autoscaling"], entry["autoscaling_settings"])  # type: ignore[attr-defined]
            changed = changed or result["status"] == "ACCEPTED"
            current = chain.deployments.get(env.current_deployment_id or "")
            if current is not None:  # the serving chainlet takes its environment's settings
                current.chainlets[name].autoscaling.update(settings[name]["autoscaling"])
        if not changed:
            return 200, {"status": "UNCHANGED", "message": "Chainlet autoscaling settings are unchanged."}
        return 200, {"status": "ACCEPTED", "message": "Chainlet autoscaling settings updated."}

    def _h_update_chainlet_instance_types(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        chain = self._chain(params["chain_id"])
        env = self._chain_env(chain, params["env_name"])
        settings = self._settings_of(env)
        wanted = {self._known_chainlet(u["chainlet_name"]): u["instance_type_id"] for u in body["updates"]}
        changed = {n: t for n, t in wanted.items() if settings[n]["instance_type_id"] != t}
        for name, kind in changed.items():
            settings[name]["instance_type_id"] = kind
        new = None
        if changed and env.current_deployment_id:  # a new deployment on the new types, promoted into the env
            now = self.clock.now()
            new = self._new_chain_deployment(chain, now, "BUILDING")
            new.instance_types = {n: s["instance_type_id"] for n, s in settings.items()}
            d = self.config.durations
            release_end = (new.ready_at(now) or now) + d.promotion_releasing
            env.promotion = Promotion(new.id, now, release_end, release_end + d.promotion_ramping, True)
            self.submissions["chain_deployment"] += 1
        return 200, {
            "requires_redeployment": new is not None,
            "chain_deployment": self._chain_dep_json(chain, new) if new else None,
            "chainlet_environment_settings": self._chainlet_settings_json(env),
        }

    # -- admin helpers -------------------------------------------------------------------------------
    def create_chain_deployment(
        self, chain_id: str, status: str = "BUILDING", fail: str | None = None
    ) -> dict[str, Any]:
        """Add a deployment to a chain, as ``truss chains push`` would (it builds, deploys, then is ACTIVE).

        ``fail`` (``BUILD_FAILED``, ``DEPLOY_FAILED`` or ``UNHEALTHY``) makes its last chainlet's build end that
        way, with ERROR lines in that chainlet's logs.
        """
        with self.lock:
            chain = self._chain(chain_id)
            dep = self._new_chain_deployment(chain, self.clock.now(), status, fail)
            return self._chain_dep_json(chain, dep)
