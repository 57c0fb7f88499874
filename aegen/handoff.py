"""What a checkpoint's training objective hands to the sampler that samples from it.

The rule, declared once: each option of the checkpoint's objective (e.g. `denoise`'s mu, sigma
and schedule) is handed to the sampler when the sampler declares an option of the same name, so
sampling sees the inputs training saw. Options the caller gives explicitly win. What is handed
over is said on the reporter (stderr), so a run never changes without saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .checkpoint import CheckpointInfo
from .console import Reporter
from .plugins import get_registry
from .sampling import CheckedSampler, check_sampler


def inherited_options(info: CheckpointInfo, sampler: str) -> dict[str, Any]:
    """The checkpoint's objective options that `sampler` declares too (the rule above)."""
    declared = get_registry().sampler(sampler).options
    trained = (info.objective or {}).get("options") or {}
    return {name: value for name, value in trained.items() if name in declared}


def sampler_for_run(
    sampler: str, options: Mapping[str, Any] | None, info: CheckpointInfo, reporter: Reporter
) -> CheckedSampler:
    """`sampler` with the options a run gives it: the explicit `options` over those inherited
    from the checkpoint's objective, checked once, before any model is loaded, so a typo costs
    no time."""
    given = dict(options or {})
    inherited = {k: v for k, v in inherited_options(info, sampler).items() if k not in given}
    if inherited:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(inherited.items()))
        changed = sorted(k for k in given if k.split(".", 1)[0] in inherited and "." in k)
        then = "".join(f", then {k}={given[k]} as given" for k in changed)
        reporter.info(
            f"sampler {sampler!r}: {shown} from the checkpoint's training objective{then}"
        )
    return check_sampler(sampler, {**inherited, **given})
