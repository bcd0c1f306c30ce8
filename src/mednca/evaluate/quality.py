"""How well the NCA quality metric NQM flags failed segmentations.

A case (clean or perturbed) counts as a failure when its Dice is below ``failure_dice`` (0.8 by default).
The NQM threshold is the ``quantile`` of NQM among the successful cases, so at most 1 - quantile of the
successes are flagged by construction; the summary says how many failures it catches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def failure_detection(
    dice: np.ndarray, nqm: np.ndarray, failure_dice: float = 0.8, quantile: float = 0.95
) -> dict[str, float | int | None]:
    """(N,) Dice and (N,) NQM of the same cases -> rank correlation, threshold and failures caught."""
    dice, nqm = np.asarray(dice, dtype=float), np.asarray(nqm, dtype=float)
    failures = dice < failure_dice
    summary: dict[str, float | int | None] = {
        "cases": int(len(dice)),
        "failures": int(failures.sum()),
        "failure_dice": failure_dice,
        "spearman_nqm_dice": None,
        "nqm_threshold": None,
        "failures_caught": None,
        "successes_flagged": None,
    }
    if len(dice) < 3 or np.all(nqm == nqm[0]) or np.all(dice == dice[0]):
        return summary
    summary["spearman_nqm_dice"] = float(spearmanr(nqm, dice).statistic)
    if failures.all() or not failures.any():
        return summary
    threshold = float(np.quantile(nqm[~failures], quantile))
    flagged = nqm > threshold
    summary.update(
        nqm_threshold=threshold,
        failures_caught=int((flagged & failures).sum()),
        successes_flagged=int((flagged & ~failures).sum()),
    )
    return summary


def quality_population(robustness: pd.DataFrame) -> pd.DataFrame:
    """The cases NQM is judged on: each robustness case once clean, plus every perturbed version of it.

    ``robustness`` holds the rows of a run's studies (case_id, study, severity, dice, nqm, ...). Severity 0
    is the same clean evaluation in every study, so it is kept once per case (with ``source`` 'clean');
    perturbed rows keep their study as ``source``.
    """
    clean = robustness[robustness["severity"] == 0].drop_duplicates("case_id").assign(source="clean")
    perturbed = robustness[robustness["severity"] > 0]
    return pd.concat([clean, perturbed.assign(source=perturbed["study"])], ignore_index=True)
