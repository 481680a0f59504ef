"""Single-visit mosaics (SVM): drizzlepac's ``runsinglehap`` on the hapgpu engines (hap-pipeline.md §1).

>>> from hapgpu.svm import run_svm                                  # doctest: +SKIP
>>> run_svm("ib4606.out", output_dir="products")                    # 0 on success

Stages, each usable alone: :func:`read_poller` (§1.2), :func:`analyze_exposure` (§1.3),
:func:`build_product_tree` (§1.4–1.6), :func:`hap_config` (§1.7), :func:`make_mosaic_wcs`
(§1.10), :func:`footprint_mask` (§1.11), :func:`refine_product_headers` (§1.12), the catalogs
(:func:`hapgpu.catalogs.make_hap_catalogs`, §1.13) and :func:`write_previews`.
"""

from ._analyze import ExitCode, analyze_exposure, determine_filter_name
from ._config import HapConfig, hap_config
from ._footprint import footprint_mask, mask_keywords, weight_keywords
from ._headers import refine_product_headers
from ._metawcs import make_mosaic_wcs
from ._pipeline import run_svm
from ._poller import read_poller
from ._previews import write_color_preview, write_previews
from ._tree import build_product_tree

__all__ = [
    "run_svm",
    "ExitCode",
    "HapConfig",
    "read_poller",
    "analyze_exposure",
    "determine_filter_name",
    "build_product_tree",
    "hap_config",
    "make_mosaic_wcs",
    "footprint_mask",
    "mask_keywords",
    "weight_keywords",
    "refine_product_headers",
    "write_previews",
    "write_color_preview",
]
