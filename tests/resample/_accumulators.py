"""Bounds between the CPU's accumulators (drizzlepac's float32 running mean and weight) and the
CUDA backends' float64 sums of the same drops (derivations in ``test_backend_parity``)."""

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def running_mean_bounds(n_drops: int) -> dict:
    """Tolerances for at most ``n_drops`` drops per output pixel, positive weights.

    ``order``: two float64 sums of the same terms in different orders (Higham eq. 4.4),
    rounded to float32 (one ulp). ``wht_rtol``: a float32 running sum of positive terms is
    within ``(n - 1) * EPS32 / 2`` of the exact sum, plus ``order``. ``sci_atol_per_scale``:
    each of the four roundings of an update (two products, their sum, the quotient) adds at
    most EPS32 / 2 of a term no larger than the data scale D, and earlier errors are carried
    on scaled by ``w / (w + dw) <= 1``: ``2 * n * EPS32`` times D. ``err_rtol``: ERR divides
    float64 variance sums (order only) by the weight.
    """
    order = EPS32 + 2 * n_drops * EPS64
    wht_rtol = n_drops * EPS32 / 2 + order
    return {"order": order, "wht_rtol": wht_rtol, "sci_atol_per_scale": 2 * n_drops * EPS32,
            "err_rtol": wht_rtol + order}


def assert_sums_match_running_mean(sums, cpu, data_scale: float, n_drops: int) -> None:
    """SCI, WHT (and ERR when present) of a Drizzle with float64 sums (``sums``, e.g. on
    cudasim) against the CPU's (``cpu``), within :func:`running_mean_bounds`; ``data_scale``
    is the largest |data| drizzled, as scaled onto the output."""
    b = running_mean_bounds(n_drops)
    np.testing.assert_allclose(sums.sci, cpu.sci, rtol=b["order"],
                               atol=b["sci_atol_per_scale"] * data_scale, equal_nan=True)
    np.testing.assert_allclose(sums.wht, cpu.wht, rtol=b["wht_rtol"], atol=0)
    if cpu.err is not None:
        np.testing.assert_allclose(sums.err, cpu.err, rtol=b["err_rtol"], atol=0, equal_nan=True)
