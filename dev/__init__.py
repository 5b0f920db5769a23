"""Dev-only tools, kept out of the wheel: the ``make demo`` runner and the local-Airflow harness it and the
real-Airflow tests share. Run from the repository root (``python -m dev.demo``); tests import them as ``dev.*``.
"""
