"""The client core: how the provider talks to Baseten, with no Airflow import at module level.

It holds the endpoint table (:mod:`.routes`), the settings (:mod:`.settings`), the transport with its retries
and deadlines (:mod:`.transport`, the lean HTTP/1.1 path :mod:`.h1`, the shared SSL context :mod:`.http`),
typed errors (:mod:`.errors`), rate limits (:mod:`.ratelimit`), redaction (:mod:`.redact`), the batch engine
(:mod:`.batch`), and the pieces of deploys and logs (:mod:`.archive`, :mod:`.upload`, :mod:`.serving`,
:mod:`.logs`). The hook (``airflow_provider_baseten.hooks``) builds on it; it never imports the hook, triggers,
operators or sensors, and ``tests/unit/test_layers.py`` imports every module here with Airflow blocked.

These modules are internal: their names may change between releases. The public API is the hook, the
operators, sensors and triggers, :mod:`airflow_provider_baseten.batch`, ``models`` and ``exceptions``.
"""
