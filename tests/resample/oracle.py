"""Thin wrappers around drizzlepac's compiled engine (``drizzlepac.cdriz``), the oracle."""

from __future__ import annotations

import numpy as np
from drizzlepac import cdriz  # the `reference` extra: failing to import it is an error


def cdriz_drizzle(data, weight, in_wcs, out_wcs, out_shape, *, kernel, pixfrac=1.0, scale=1.0,
                  in_units="cps", expin=1.0, wt_scl=1.0, fillval="INDEF", uniqid=1, stepsize=10,
                  outsci=None, outwht=None, outctx=None):
    """Run ``cdriz.tdriz`` as AstroDrizzle calls it; returns ``(sci, wht, ctx)``."""
    ny, nx = data.shape
    if outsci is None:
        outsci = np.zeros(out_shape, np.float32)
        outwht = np.zeros(out_shape, np.float32)
        outctx = np.zeros(out_shape, np.int32)
    mapping = cdriz.DefaultWCSMapping(in_wcs, out_wcs, nx, ny, stepsize)
    cdriz.tdriz(np.array(data, dtype=np.float32), np.array(weight, dtype=np.float32), outsci, outwht,
                outctx, uniqid, 0, 1, 1, ny, scale, 1.0, 1.0, "center", pixfrac, kernel, in_units,
                expin, wt_scl, fillval, 0, 0, 1, mapping)
    return outsci, outwht, outctx


def cdriz_blot(source, chip_wcs, source_wcs, chip_shape, *, interp="poly5", scale=1.0, exptime=1.0,
               misval=0.0, stepsize=10):
    """Run ``cdriz.tblot`` as AstroDrizzle's blot step calls it."""
    ny, nx = chip_shape
    out = np.zeros(chip_shape, np.float32)
    mapping = cdriz.DefaultWCSMapping(chip_wcs, source_wcs, nx, ny, stepsize)
    name = {"lanczos3": "lan3", "lanczos5": "lan5"}.get(interp, interp)
    src = np.ascontiguousarray(source, dtype=np.float32)
    cdriz.tblot(src, out, 1, src.shape[1], 1, src.shape[0], scale, 1.0, 1.0, 1.0, "center", name,
                exptime, misval, 1.0, 1, mapping)
    return out
