"""`aegen eval`: FID, KID and precision/recall of generated images against real ones, on
the standard Inception-v3 features, offline (docs/evaluation.md)."""

from __future__ import annotations

from .task import EvalResult, EvalSettings, evaluate

__all__ = ["EvalResult", "EvalSettings", "evaluate"]
