"""Training endpoints of the emulated API: projects, jobs, checkpoints, logs, metrics and downloads."""

from __future__ import annotations

from typing import Any

from airflow_provider_baseten.emulator.core import StateCore
from airflow_provider_baseten.emulator.loss_script import STEPS, loss_at, loss_line, parse_script
from airflow_provider_baseten.emulator.objects import (
    TEAM,
    ApiError,
    TrainingJob,
    iso,
)


class TrainingHandlers(StateCore):
    """Training projects and jobs. Handlers are ``_h_<endpoint name>``; see :meth:`.EmulatorState.handle`."""

    def _job(self, params: dict[str, str]) -> TrainingJob:
        self._project(params["training_project_id"])
        job = self.jobs.get(params["training_job_id"])
        if job is None or job.project_id != params["training_project_id"]:
            raise ApiError(404, f"Training job {params['training_job_id']} not found")
        return job

    def _job_json(self, job: TrainingJob, now: float) -> dict[str, Any]:
        status, since = job.status(now)
        project = self.projects.get(job.project_id, {"id": job.project_id, "name": job.project_id})
        return {
            "id": job.id,
            "created_at": iso(job.created),
            "current_status": status,
            "error_message": "Training process exited with code 1 (emulated failure)."
            if status == "TRAINING_JOB_FAILED"
            else None,
            "instance_type": dict(job.compute[0]),  # per node: the job pays for node_count of them
            "updated_at": iso(since),
            "training_project_id": job.project_id,
            "training_project": {"id": project["id"], "name": project["name"]},
            "name": job.name,
            "priority": 0,
            "availability_model": "dedicated",
            "checkpoint_sync_status": self._sync_status(job, now),
        }

    def _sync_status(self, job: TrainingJob, now: float) -> str | None:
        """``None`` until the job completes, then ``SYNCING`` for ``durations.checkpoint_sync``, then ``COMPLETED``."""
        status, since = job.status(now)
        if status != "TRAINING_JOB_COMPLETED":
            return None
        return "COMPLETED" if now >= since + job.durations.checkpoint_sync else "SYNCING"

    def _project_json(self, project: dict[str, Any], now: float) -> dict[str, Any]:
        jobs = [j for j in self.jobs.values() if j.project_id == project["id"]]
        latest = max(jobs, key=lambda j: j.created, default=None)
        return {
            "id": project["id"],
            "name": project["name"],
            "created_at": iso(project["created"]),
            "updated_at": iso(max(latest.created if latest else 0.0, project.get("updated", project["created"]))),
            "team_name": TEAM,
            "latest_job": self._job_json(latest, now) if latest else None,
        }

    def _h_create_training_job(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        project = self._project(params["training_project_id"])
        spec = body.get("training_job")
        if not isinstance(spec, dict) or not isinstance(spec.get("image"), dict):
            raise ApiError(422, "training_job.image is required")
        now = self.clock.now()
        job = self._create_job(project["id"], spec, now)
        self.submissions["training_job"] += 1
        return 200, {"training_job": self._job_json(job, now)}

    def _h_list_training_jobs(self, params: dict[str, str], *_: Any) -> Any:
        project = self._project(params["training_project_id"])
        now = self.clock.now()
        jobs = [self._job_json(j, now) for j in self.jobs.values() if j.project_id == project["id"]]
        return 200, {"training_project": self._project_json(project, now), "training_jobs": jobs}

    def _h_get_training_job(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        return 200, {
            "training_project": self._project_json(self.projects[job.project_id], now),
            "training_job": self._job_json(job, now),
        }

    def _h_search_training_jobs(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        now = self.clock.now()
        jobs = [self._job_json(j, now) for j in self.jobs.values()]
        if body.get("project_id"):
            jobs = [j for j in jobs if j["training_project_id"] == body["project_id"]]
        if body.get("job_id"):
            jobs = [j for j in jobs if j["id"] == body["job_id"]]
        if body.get("statuses"):
            jobs = [j for j in jobs if j["current_status"] in body["statuses"]]
        for order in reversed(body.get("order_by") or [{"field": "created_at", "order": "desc"}]):
            key = order.get("field", "created_at")

            def by_field(j: dict[str, Any], k: str = key) -> str:
                return str(j.get(k) or "")

            jobs.sort(key=by_field, reverse=order.get("order", "desc") == "desc")
        return 200, {"training_jobs": jobs}

    def _h_stop_training_job(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        status = job.status(now)[0]
        if status.endswith(("_PENDING", "_CREATED", "_DEPLOYING", "_RUNNING")):
            job.stopped_at = now
            self.cancellations["training_job"] += 1
        return 200, {"training_job": self._job_json(job, now)}

    def _h_recreate_training_job(self, params: dict[str, str], *_: Any) -> Any:
        old = self._job(params)
        now = self.clock.now()
        job = self._create_job(old.project_id, old.spec, now)
        self.submissions["training_job"] += 1
        return 200, {"training_job": self._job_json(job, now)}

    def _checkpoints(self, job: TrainingJob, now: float) -> list[dict[str, Any]]:
        progress = job.running_progress(now)
        status, _ = job.status(now)
        count = 2 if status == "TRAINING_JOB_COMPLETED" else (1 if progress >= 0.5 else 0)
        run_start = job.created + sum(d for _, d in job.timeline()[:-1])
        synced = "COMPLETE" if self._sync_status(job, now) == "COMPLETED" else "SYNCING"
        return [
            {
                "checkpoint_id": f"checkpoint-{i}",
                "created_at": iso(run_start + job.durations.training_running * i / 2),
                "checkpoint_type": "lora",
                "base_model": "Qwen/Qwen2.5-7B-Instruct",
                "lora_adapter_config": {"r": 16, "lora_alpha": 32},
                "size_bytes": 1_048_576 * i,
                "training_job_id": job.id,
                "sync_status": synced,
            }
            for i in range(1, count + 1)
        ]

    def _h_get_training_job_checkpoints(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        return 200, {"training_job": self._job_json(job, now), "checkpoints": self._checkpoints(job, now)}

    def _h_get_training_job_checkpoint_files(self, params: dict[str, str], query: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        files = []
        for cp in self._checkpoints(job, now):
            for fname in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json"):
                rel = f"{cp['checkpoint_id']}/{fname}"
                files.append(
                    {
                        "url": f"{self.files_url}/training/{job.id}/{rel}",
                        "relative_file_name": rel,
                        "node_rank": 0,
                        "size_bytes": 1024,
                        "last_modified": cp["created_at"],
                    }
                )
        try:
            start = int(query.get("page_token") or 0)
            size = int(query.get("page_size") or 100)
        except ValueError:
            raise ApiError(422, "page_token and page_size must be integers") from None
        page = files[start : start + size]
        nxt = start + size if start + size < len(files) else None
        return 200, {"presigned_urls": page, "next_page_token": nxt, "total_count": len(files)}

    def _h_get_training_job_logs(self, params: dict[str, str], query: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        lines: list[tuple[float, str, str]] = []
        t = job.created
        for status, duration in job.timeline():
            if t > now:
                break
            lines.append((t, "INFO", f"{status}: {job.name or job.id}"))
            t += duration
        env = (job.spec.get("runtime") or {}).get("environment_variables") or {}
        script = parse_script(env)
        if script is not None and script[0] == "invalid":
            lines.append((job.created, "ERROR", f"EMULATOR_LOSS: cannot read {env.get('EMULATOR_LOSS')!r}"))
            script = None
        if job.running_progress(now) > 0:
            run_start = job.created + sum(d for _, d in job.timeline()[:-1])
            per = STEPS if script else 10  # a scripted job logs every step
            for i in range(1, int(job.running_progress(now) * per + 1e-9) + 1):
                at = run_start + job.durations.training_running * i / per
                if script:
                    lines.append((at, "INFO", loss_line(script[2], i, loss_at(*script[:2], i))))
                else:
                    lines.append((at, "INFO", f"step {i * 10}/100 loss={2.0 / (i + 1):.4f}"))
        status, since = job.status(now)
        if status == "TRAINING_JOB_FAILED":
            lines.append((since, "ERROR", "Traceback (most recent call last):"))
            lines.append((since, "ERROR", "RuntimeError: loss became NaN at step 100 (emulated failure)"))
        if status not in (
            "TRAINING_JOB_PENDING",
            "TRAINING_JOB_CREATED",
            "TRAINING_JOB_DEPLOYING",
            "TRAINING_JOB_RUNNING",
        ):
            lines.append((since, "INFO", f"{status}: finished"))
        entries: list[tuple[int, str | None, str | None, str]] = [
            (round(at * 1e9), level, "replica-0", message) for at, level, message in lines
        ]
        # Baseten's default window is the last 30 minutes; a job's own logs default to its whole life here.
        window = {"start_epoch_millis": str(int(job.created * 1000)), **query}
        return 200, self._logs(entries, window)

    def _h_get_training_job_metrics(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        points = max(1, int(job.running_progress(now) * 5))
        run_start = job.created + sum(d for _, d in job.timeline()[:-1])

        def series(scale: float) -> list[dict[str, Any]]:
            return [
                {"value": scale * (0.5 + 0.1 * i), "timestamp": iso(run_start + i * job.durations.training_running / 5)}
                for i in range(points)
            ]

        storage = {"usage_bytes": series(1e9), "utilization": series(0.1)}
        metrics = {
            "gpu_memory_usage_bytes": {"0": series(1e10)},
            "gpu_utilization": {"0": series(1.0)},
            "cpu_usage": series(2.0),
            "cpu_memory_usage_bytes": series(4e9),
            "ephemeral_storage": storage,
        }
        return 200, {
            **metrics,
            "training_job": self._job_json(job, now),
            "cache": None,
            "per_node_metrics": [{"node_id": "node-0", "metrics": metrics}],
        }

    def _h_download_training_job(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        return 200, {"artifact_presigned_urls": [f"{self.files_url}/training/{job.id}/artifacts.tar.gz"]}

    # -- training projects ---------------------------------------------------------------------------
    def _h_delete_training_job(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        del self.jobs[job.id]
        return 200, {"id": job.id, "deleted": True, "training_project_id": job.project_id}

    def _h_update_training_job(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        job = self._job(params)
        priority = self._body(body).get("priority")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ApiError(422, "priority (an integer) is required")
        job.spec["priority"] = priority  # the emulator does not schedule by it
        return 200, {"training_job": self._job_json(job, self.clock.now())}

    def _h_delete_training_project(self, params: dict[str, str], *_: Any) -> Any:
        project = self._project(params["training_project_id"])
        del self.projects[project["id"]]
        for job_id in [j.id for j in self.jobs.values() if j.project_id == project["id"]]:
            del self.jobs[job_id]
        return 200, {"id": project["id"], "deleted": True}

    def _h_get_training_project_cache_summary(self, params: dict[str, str], *_: Any) -> Any:
        # One cached checkpoint file per job of the project, 50 MiB each, modified when the job was created.
        project = self._project(params["training_project_id"])
        files = [
            {
                "path": f"/root/.cache/checkpoints/{job.id}/model.safetensors",
                "size_bytes": 50 * 1024 * 1024,
                "modified": iso(job.created),
                "file_type": "file",
                "permissions": "-rw-r--r--",
            }
            for job in self.jobs.values()
            if job.project_id == project["id"]
        ]
        return 200, {"timestamp": iso(self.clock.now()), "project_id": project["id"], "file_summaries": files}

    def _h_list_training_projects(self, *_: Any) -> Any:
        now = self.clock.now()
        return 200, {"training_projects": [self._project_json(p, now) for p in self.projects.values()]}

    def _h_get_training_project(self, params: dict[str, str], *_: Any) -> Any:
        project = self._project(params["training_project_id"])
        return 200, {"training_project": self._project_json(project, self.clock.now())}

    def _h_create_training_project(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        spec = self._body(body).get("training_project")
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not name:
            raise ApiError(422, "training_project.name is required")
        now = self.clock.now()
        project = next((p for p in self.projects.values() if p["name"] == name), None)
        if project is None:  # an upsert: the name is the identity
            project = {"id": self.new_id(), "name": name, "created": now, "updated": now}
            self.projects[project["id"]] = project
            self.submissions["training_project"] += 1
        else:
            project["updated"] = now
        return 200, {"training_project": self._project_json(project, now)}
