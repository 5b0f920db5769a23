"""The provider's custom OpenLineage facets. Imported only by :mod:`._lineage`'s functions, so only when the
``[openlineage]`` extra is installed and the listener asks."""

from __future__ import annotations

import attr
from openlineage.client.generated.base import RunFacet

#: Where the facet's JSON schema is documented.
COST_FACET_SCHEMA = (
    "https://github.com/airflow-provider-baseten/airflow-provider-baseten/blob/main/docs/operators/training.md"
    "#cost-and-budget-guards"
)


@attr.define
class BasetenCostRunFacet(RunFacet):
    """What the run cost on Baseten (run facet ``baseten_cost``): the XCom ``baseten_cost`` fields."""

    usd: float
    estimated: bool
    minutes: float
    instance_type: str | None
    source: str

    @staticmethod
    def _get_schema() -> str:
        return COST_FACET_SCHEMA
