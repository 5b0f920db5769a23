"""Scripted loss timelines of emulated training jobs, for testing ``stop_on`` rules on the emulator's clock.

A job opts in with its runtime environment variables (``runtime.environment_variables``, which Baseten's
``CreateTrainingJobV1`` accepts as is, so nothing non-standard is sent):

- ``EMULATOR_LOSS``: ``converging`` (the default shape), ``nan@N`` (``nan`` from step N), ``diverging@N``
  (x1.5 per step from step N), ``plateau@N`` (flat from step N);
- ``EMULATOR_LOSS_FORMAT``: ``kv`` (``step=N loss=X``, the default), ``hf`` (a Hugging Face Trainer dict, no
  step: the reader numbers points), ``json`` (``{"step": N, "loss": X, "epoch": E}``).

The job logs :data:`STEPS` points, evenly over its RUNNING phase: step ``i`` is written at
``run_start + running * i / STEPS``. Without ``EMULATOR_LOSS`` a job logs its usual ten ``step N/100 loss=X`` lines.
"""

from __future__ import annotations

import json
import math

#: Points a scripted job logs over its RUNNING phase.
STEPS = 100
SHAPES = ("converging", "nan", "diverging", "plateau")
FORMATS = ("kv", "hf", "json")


def converging(step: int) -> float:
    """The converging loss: 2 / (1 + 0.05 step), improving by ~0.003 per step at step 100."""
    return 2.0 / (1.0 + 0.05 * step)


def parse_script(env: dict[str, object]) -> tuple[str, int, str] | None:
    """``(shape, from_step, format)`` from a job's environment variables; ``None`` when it has no script.

    An unreadable script is an error in the test that set it: it says so in the job's log (see
    :func:`script_error`) instead of failing the create, which Baseten would accept.
    """
    raw = env.get("EMULATOR_LOSS")
    if raw is None:
        return None
    shape, _, at = str(raw).partition("@")
    fmt = str(env.get("EMULATOR_LOSS_FORMAT") or "kv")
    if shape not in SHAPES or fmt not in FORMATS or (shape != "converging" and not at.isdigit()):
        return ("invalid", 0, fmt)
    return (shape, int(at or STEPS + 1), fmt)


def loss_at(shape: str, from_step: int, step: int) -> float:
    """The scripted loss at ``step`` (1-based)."""
    if step < from_step or shape == "converging":
        return converging(step)
    if shape == "nan":
        return math.nan
    if shape == "diverging":
        return converging(from_step) * 1.5 ** (step - from_step)
    return converging(from_step)  # plateau


def loss_line(fmt: str, step: int, loss: float) -> str:
    """One log line of the scripted series, in the job's format."""
    epoch = round(step / STEPS, 4)
    if fmt == "hf":
        return repr({"loss": round(loss, 6), "grad_norm": 0.9, "learning_rate": 2e-05, "epoch": epoch})
    if fmt == "json":
        return json.dumps({"step": step, "loss": round(loss, 6), "epoch": epoch})
    return f"step={step} loss={round(loss, 6)} epoch={epoch}"
