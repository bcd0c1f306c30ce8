"""How well the NCA quality metric NQM flags failed segmentations.

A case (clean or perturbed) counts as a failure when its Dice is below ``failure_dice`` (0.8 by default).
The NQM threshold is the ``quantile`` of NQM among the successful cases of the validation split, so at most
about 1 - quantile of the successes are flagged there; it is then judged on the test cases: how many
failures it catches and how many successes it flags. Without a validation split the threshold is fitted on
the cases it is judged on, and the summary says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

FAILURE_DICE, QUANTILE = 0.8, 0.95


def nqm_threshold(
    dice: np.ndarray, nqm: np.ndarray, failure_dice: float = FAILURE_DICE, quantile: float = QUANTILE
) -> float | None:
    """The ``quantile`` of NQM among the (N,) cases with Dice >= ``failure_dice``; None without a success."""
    dice, nqm = np.asarray(dice, dtype=float), np.asarray(nqm, dtype=float)
    successes = nqm[(dice >= failure_dice) & np.isfinite(nqm)]
    return float(np.quantile(successes, quantile)) if len(successes) else None


def failure_detection(
    dice: np.ndarray,
    nqm: np.ndarray,
    failure_dice: float = FAILURE_DICE,
    quantile: float = QUANTILE,
    calibrated: float | None = None,
    calibrated_on: str | None = None,
) -> dict[str, float | int | str | None]:
    """(N,) Dice and (N,) NQM of the same cases -> rank correlation, threshold and failures caught.

    ``calibrated``: a threshold fitted elsewhere (on the ``calibrated_on`` split), judged on these cases.
    Without it the threshold is fitted on these cases themselves (``threshold_fitted_on`` 'same cases'),
    and only when they hold both failures and successes.
    """
    dice, nqm = np.asarray(dice, dtype=float), np.asarray(nqm, dtype=float)
    failures = dice < failure_dice
    summary: dict[str, float | int | str | None] = {
        "cases": int(len(dice)),
        "failures": int(failures.sum()),
        "failure_dice": failure_dice,
        "quantile": quantile,
        "spearman_nqm_dice": None,
        "nqm_threshold": None,
        "threshold_fitted_on": None,
        "failures_caught": None,
        "successes_flagged": None,
    }
    varied = len(dice) >= 3 and not np.all(nqm == nqm[0]) and not np.all(dice == dice[0])
    if varied:
        summary["spearman_nqm_dice"] = float(spearmanr(nqm, dice).statistic)
    if calibrated_on is not None:
        if calibrated is None:  # the calibration split had no successful case
            return {**summary, "threshold_fitted_on": calibrated_on}
        threshold, fitted_on = float(calibrated), calibrated_on
    elif varied and failures.any() and not failures.all():
        threshold, fitted_on = nqm_threshold(dice, nqm, failure_dice, quantile), "same cases"
    else:
        return summary
    flagged = nqm > threshold
    summary.update(
        nqm_threshold=threshold,
        threshold_fitted_on=fitted_on,
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
