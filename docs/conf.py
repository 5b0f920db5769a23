"""Sphinx configuration of the provider's docs (``make docs``: warnings are errors, every reference checked)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

from airflow_provider_baseten import __version__  # noqa: E402

project = "airflow-provider-baseten"
author = "airflow-provider-baseten maintainers"
copyright = "the airflow-provider-baseten maintainers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
    "exampleinclude",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_ext"]
root_doc = "index"

# Markdown pages link to each other's headings (`guides/batches.md#resume`), as GitHub shows them.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# The API reference: what the public modules document, in source order, with the signatures as written.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_class_signature = "separated"

# Every internal reference must resolve (-n). References into other projects (Airflow, httpx, pydantic, the
# standard library) are not checked: that needs intersphinx, which fetches their inventories from the internet.
# Names with a leading underscore are internal (not in the API reference), so a docstring's reference to one
# has no page to link to; it stays plain text.
nitpicky = True
_EXTERNAL = "airflow|re|httpx|pydantic|pyarrow|pendulum|datetime|collections|typing|typing_extensions|abc|os|pathlib|enum|asyncio|types|logging|concurrent|urllib|fsspec|botocore|socket|decimal|pytest"
nitpick_ignore_regex = [
    (r"py:.*", rf"({_EXTERNAL})(\..*)?"),
    (r"py:.*", r"(.*\.)?_[A-Za-z]\w*(\..*)?"),  # a private module or name
    # Internal modules whose public names are re-exported: client (by config), batch_io (by batch), the
    # emulator's parts (by emulator).
    (r"py:.*", r"airflow_provider_baseten\.(client|batch_io|emulator\.(state|app|core|objects|wire|clock))(\..*)?"),
    # Type aliases and names of other packages that annotations show unqualified.
    (
        r"py:class",
        r"Any|Self|Callable|Iterator|AsyncIterator|Iterable|AsyncIterable|Sequence|Mapping|Awaitable|Literal|NoneType|Path|Context|Enum|StrEnum|BaseModel|BaseOperator|BaseSensorOperator|BaseTrigger|BaseEventTrigger|BaseHook|BaseOperatorLink|TriggerEvent|FastAPI|ObjectStoragePath|Asset|AssetAlias|Connection|TaskInstanceKey|PokeReturnValue|JsonValue|Snapshot|Endpoint|Transport|Gateway|Fingerprint|T",
    ),
    (
        r"py:(func|meth|data|attr)",
        r"mask_api_key|deadline|check|until|CLOUD_URL_DEFAULTS|deployment_payload|poke_interval|model_inputs?",
    ),
]


def _resolve_short_names(app, env, node, contnode):  # type: ignore[no-untyped-def]
    """Resolve an unqualified `PredictOperator` in a docstring to the one public object of that name.

    Docstrings name the provider's classes briefly (as their readers do); the Python domain only looks in the
    docstring's own module, so it would miss ``PredictOperator`` from ``operators/openai.py``.
    """
    if node.get("refdomain") != "py" or "." in node["reftarget"].lstrip("~"):
        return None
    name = node["reftarget"].lstrip("~")
    domain = env.get_domain("py")
    matches = [
        full for full in domain.objects if full.startswith("airflow_provider_baseten.") and full.endswith("." + name)
    ]
    if len({domain.objects[m].node_id for m in matches}) != 1:
        return None
    node["reftarget"] = matches[0]
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], matches[0], node, contnode)


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("missing-reference", _resolve_short_names)


html_theme = "furo"
html_title = f"airflow-provider-baseten {release}"
html_static_path: list[str] = []
