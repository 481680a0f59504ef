"""Pipeline astrometry: drizzlepac runastrodriz offline (hap-pipeline.md section 3).

>>> from hapgpu.runastrodriz import process                  # doctest: +SKIP
>>> process("j8cw04010_asn.fits", align_to_gaia=False)       # 0; j8cw04010_drz.fits, ...

``hapgpu runastrodriz INPUT [NEWPATH] [-b] [-d] [-a] [-f] [-g] [-i] [-m] [-n N] [-v]
[--refcat FILE|URL]`` on the command line.
"""

from ._pipeline import process

__all__ = ["process"]
