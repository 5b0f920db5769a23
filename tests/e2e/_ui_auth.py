"""The auth manager of ``make ui-check``: Airflow's SimpleAuthManager, except that the user ``outsider`` may
not read the Dag ``baseten_deploy`` (SimpleAuthManager has no per-Dag permissions of its own), so the
Baseten tab's 403 is checked against a real API server's auth manager."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

HIDDEN_DAG = "baseten_deploy"
OUTSIDER = "outsider"


class OneDagHiddenAuthManager(SimpleAuthManager):
    """SimpleAuthManager, with :data:`HIDDEN_DAG` hidden from :data:`OUTSIDER`."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.get_name() == OUTSIDER and details is not None and details.id == HIDDEN_DAG:
            return False
        return bool(super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details))
