#!/usr/bin/env bash
# The GPU check of hapgpu: ONE command for the device machine (one NVIDIA H200, Python 3.12,
# CuPy, Numba, numba-cuda; nothing can be downloaded there), under 8 minutes.
#
# Here (PyPI reachable), once per checkout:
#     bash benchmarks/fetch_device_wheels.sh      # astropy, stwcs, tweakwcs, drizzlepac, ... -> .whl/
# Then, with the device tool, from the repository root:
#     run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=540)
#
# Steps (each under its own `timeout`, all of them under DEVICE_CHECK_BUDGET_S, default 450 s;
# a failing step does not stop the later ones; the exit status is 0 only when every step
# passed). Everything is tee'd into $OUT (the folder the device tool returns; 7 files):
#     env.txt                 wheel install, hapgpu import shim, nvidia-smi, versions, CUDA probe
#     pytest_gpu.txt          python3 -m pytest -m gpu (HAPGPU_BACKEND=gpu) over the files that
#                             hold gpu-marked tests; a skipped gpu test counts as a failure there
#     bench_resample.txt      benchmarks/bench_resample.py --backend gpu (full UVIS chip, vs cdriz)
#     bench_astrodrizzle.txt  benchmarks/bench_astrodrizzle.py --backend gpu (4 UVIS, 1024^2 chips)
#     bench_detection.txt     benchmarks/bench_detection.py --backend gpu (2048^2 fields)
#     bench_align.txt         benchmarks/bench_align.py --backend gpu (4 UVIS, 512^2 chips)
#     summary.txt             one line per step: status, exit code, seconds
# Outside the device tool, $OUT defaults to a new folder under /tmp.
#
# CuPy code paths that no CPU test runs. The cpu and cudasim backends use NumPy arrays, so
# every `bk.name == "gpu"` branch, every `xp.` call with xp = cupy and every CuPy-only call
# below has run nowhere yet; the gpu-marked test that exercises each is in brackets:
#   hapgpu/backend.py: cuda_available (cupy + numba.cuda probe), Backend.xp, .asarray
#       (cupy.ascontiguousarray), .to_host (.get()), .synchronize (stream sync)   [all gpu tests]
#   hapgpu/resample/_drizzle.py: Drizzle.__init__ (CuPy float64 accumulators), _as_image
#       (host or CuPy input -> device), _context_plane (cupy.concatenate, > 32 inputs),
#       device_arrays / sci / wht / ctx / err (cupy.where, cupy.sqrt) / dq, and the "cuda"
#       kernels of kernels/drizzle.py (real float64 atomics, FMA)
#       [tests/resample/test_backend_parity.py::test_drizzle_cpu_equals_gpu,
#        ::test_drizzle_gpu_keeps_device_arrays_and_many_contexts]
#   hapgpu/resample/_blot.py: blot (CuPy output, on-device input kept on device, "cuda"
#       kernel of kernels/blot.py)   [test_backend_parity.py::test_blot_cpu_equals_gpu,
#       ::test_blot_gpu_keeps_device_arrays]
#   hapgpu/resample/_pixmap.py: PixelMap.kernel_inputs (coordinate tables to the device)
#       [the two above]
#   kernels/combine.py: combine_stack / minmed via _sorted_good, _median_of_sorted,
#       _mean_of_sorted, _fill_first_column, box_any, _minmed_arrays (cupy.sort,
#       take_along_axis, cumsum, pad)   [tests/astrodrizzle/test_kernels_gpu.py]
#   kernels/crrej.py: abs_derivative, convolve_symmetric (cupy.pad "symmetric"),
#       cosmic_ray_mask via _abs_derivative_arrays / _cosmic_ray_mask_arrays
#       [tests/astrodrizzle/test_kernels_gpu.py]
#   kernels/imstats.py: image_statistics via _clip_pass, _histogram (cupy.bincount),
#       _statistics (cupy.median)   [tests/astrodrizzle/test_kernels_gpu.py]
#   hapgpu/astrodrizzle/_runtime.py: _device_budget (cupy memGetInfo, memory pool);
#       _pipeline.py: _separate, _median, _final, _final_dq, _crclean, _write_intermediates
#       (to_host); _stages.py: drizzle_separate, median_chunk, blot_chip, cr_mask,
#       drizzle_final; _sky.py: static_masks, measure; _exposure.py: dq_good, load_pixels
#       [tests/astrodrizzle/test_backends.py::test_gpu_equals_cpu]
#   hapgpu/detection/filters.py: ndimage_module (cupyx.scipy.ndimage: gaussian_laplace,
#       gaussian_filter, median_filter, maximum_filter, binary_erosion, correlate),
#       _convolve_filled, convolve (NaN interpolation with cupy.where)
#       [tests/detection/test_detection_filters.py::test_filters_gpu_match_cpu,
#        tests/detection/test_detection_gpu.py::test_ndimage_filters_and_label,
#        ::test_convolve_interpolates_nans]
#   hapgpu/detection/_common.py: to_backend (CuPy input kept, host input uploaded)   [all]
#   hapgpu/detection/stats.py: _gather_device, _clip_sorted, _centre_spread_sorted
#       (cupy.sort, searchsorted), sigma_clipped_stats, mad_rms
#       [test_detection_gpu.py::test_sigma_clipped_stats_and_mad_rms]
#   hapgpu/detection/background.py: _box_stats_cuda, _expand   [::test_background2d]
#   hapgpu/detection/segmentation.py: _label_cuda (cupy.cumsum relabel), _label_stats_cuda,
#       _detect_core, deblend_sources   [::test_detect_deblend_catalog,
#       ::test_ndimage_filters_and_label]
#   hapgpu/detection/catalog.py: _measure_cuda (atomics into CuPy accumulators),
#       background_centroid   [::test_detect_deblend_catalog]
#   hapgpu/detection/starfind.py: _peak_map, _peaks (cupy.nonzero, nanmin), find_peaks,
#       DAOStarFinder._convolve / _measure   [::test_photometry_and_stars, ::test_find_peaks]
#   hapgpu/detection/aperture.py: _sums, aperture_stats_tbl   [::test_photometry_and_stars]
#   hapgpu/detection/quality.py: focus_index (cupy.nonzero), compute_similarity
#       (cupy.nansum), _source_excess, _overlap_difference, max_overlap_diff
#       [::test_quality_metrics, ::test_max_overlap_diff]
#   hapgpu/align/_sources.py: _convolve (cupyx.scipy.signal.fftconvolve), build_dq_mask,
#       compute_background, build_auto_kernel, classify_sources, clean_cosmic_rays,
#       _segment_stars, extract_sources, refine_centroids, _stack, _weight_image
#       [tests/align/test_align_sources.py::test_gpu_source_lists_equal_the_cpu_ones]
#   hapgpu/align/_sources.py: extract_sbc_sources (cupy path)   [none yet: no gpu test]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
SITE=${DEVICE_CHECK_SITE:-/tmp/site}
WHEELS=${DEVICE_CHECK_WHEELS:-$ROOT/.whl}

# --- internal sub-commands (run under `timeout` by the steps below) ------------------------
if [ "${1:-}" = "--install" ]; then
    # 1. the carried wheels, skipping any package the device already has at the same or a newer
    #    version (typing-extensions, say), into $SITE
    if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "no wheels in $WHEELS: run benchmarks/fetch_device_wheels.sh here and carry .whl" >&2
        exit 1
    fi
    mapfile -t chosen < <("$PY" - "$WHEELS" <<'PYEOF'
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import parse_wheel_filename
from packaging.version import Version

for path in sorted(Path(sys.argv[1]).glob("*.whl")):
    name, version, _, _ = parse_wheel_filename(path.name)
    try:
        have = Version(metadata.version(name))
    except metadata.PackageNotFoundError:
        have = None
    if have is not None and have >= version:
        print(f"device has {name} {have} (>= {version}): wheel not installed", file=sys.stderr)
        continue
    print(path)
PYEOF
)
    echo "installing ${#chosen[@]} wheels into $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "${chosen[@]}" || exit 1
    # Byte-compile them now, warnings off: on Python 3.12 an invalid escape sequence in a
    # docstring (stwcs has some) is a SyntaxWarning at import, which pytest's
    # filterwarnings=error turns into a SyntaxError; compiled files are not compiled again.
    "$PY" -W ignore -m compileall -q -j 0 "$SITE" > /dev/null || exit 1
    # 2. hapgpu from this source tree: an editable install maps hapgpu.kernels -> kernels/ and
    #    hapgpu.pars -> pars/ (pyproject's package-dir); where pip cannot build it (or with
    #    DEVICE_CHECK_SHIM=1), a sitecustomize in $SITE installs the same mapping as a meta-path
    #    finder. (pytest and bench_align put the repository root first on sys.path, so the
    #    source tree's hapgpu is the one imported in any case.)
    if [ "${DEVICE_CHECK_SHIM:-0}" != 1 ] \
            && "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e "$ROOT"; then
        echo "hapgpu: editable install of $ROOT"
    else
        echo "hapgpu: mapping hapgpu.kernels and hapgpu.pars through $SITE/sitecustomize.py"
        cat > "$SITE/sitecustomize.py" <<PYEOF
"""Written by benchmarks/device_check.sh: hapgpu.kernels and hapgpu.pars from $ROOT."""
import os
import sys
from importlib.machinery import ModuleSpec
from importlib.util import spec_from_file_location

_FOLDERS = {"hapgpu.kernels": "$ROOT/kernels", "hapgpu.pars": "$ROOT/pars"}


class _SourceTreeFinder:
    """Finds the two subpackages that pyproject.toml maps to folders outside hapgpu/."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        folder = _FOLDERS.get(fullname)
        if folder is None:
            return None
        init = os.path.join(folder, "__init__.py")
        if os.path.exists(init):
            return spec_from_file_location(fullname, init, submodule_search_locations=[folder])
        spec = ModuleSpec(fullname, None, is_package=True)  # data-only package (pars)
        spec.submodule_search_locations = [folder]
        return spec


sys.meta_path.append(_SourceTreeFinder)
PYEOF
    fi
    exit 0
fi

if [ "${1:-}" = "--env" ]; then
    status=0
    uname -a; echo "cpus: $(nproc)"; "$PY" -V
    nvidia-smi || status=1
    cd /tmp && "$PY" - <<'PYEOF' || status=1
import sys
from importlib import metadata

for name in ("numpy", "scipy", "numba", "numba-cuda", "llvmlite", "cupy-cuda13x", "cupy-cuda12x",
             "cuda-python", "cuda-bindings", "astropy", "stwcs", "tweakwcs", "gwcs", "drizzlepac",
             "photutils", "drizzle", "pytest", "typing-extensions"):
    try:
        print(f"{name:18s} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"{name:18s} -")
import hapgpu
import hapgpu.kernels
import hapgpu.pars
from hapgpu.backend import cuda_available, resolve_backend

print("hapgpu", hapgpu.__version__, "from", hapgpu.__file__, "kernels from", hapgpu.kernels.__file__)
if not cuda_available():
    sys.exit("hapgpu.backend.cuda_available() is False: CuPy or Numba CUDA cannot reach the GPU")
import cupy
from numba import cuda

bk = resolve_backend("gpu")
props = cupy.cuda.runtime.getDeviceProperties(0)
free, total = cupy.cuda.runtime.memGetInfo()
print(f"device {props['name'].decode()}  cc {props['major']}.{props['minor']}  "
      f"{props['multiProcessorCount']} SMs  memory {total / 2**30:.1f} GiB ({free / 2**30:.1f} free)")
print(f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}  driver {cupy.cuda.runtime.driverGetVersion()}"
      f"  cupy {cupy.__version__}")
try:
    print("numba.cuda:", cuda.get_current_device().name, "runtime", cuda.runtime.get_version())
except Exception as exc:  # informative only; the kernels' own tests follow
    print("numba.cuda device query failed:", repr(exc))
x = bk.asarray([1.0, 2.0, 3.0])
assert bk.to_host(x * 2).tolist() == [2.0, 4.0, 6.0]
print("backend gpu:", bk, "round trip ok")
PYEOF
    exit $status
fi

# --- the check ------------------------------------------------------------------------------
BUDGET=${DEVICE_CHECK_BUDGET_S:-450}
OUT=${OUT:-$(mktemp -d /tmp/hapgpu-device-check.XXXXXX)}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
export PYTHONUNBUFFERED=1
START=$SECONDS
FAILED=0

# step NAME LOG LIMIT_S COMMAND...: run COMMAND under `timeout` (cut to what is left of the
# budget), tee its output into $OUT/LOG, and record the outcome in summary.txt.
step() {
    local name=$1 log=$OUT/$2 limit=$3
    shift 3
    local left=$((BUDGET - (SECONDS - START)))
    if [ "$left" -lt 30 ]; then
        printf '%-20s NOT RUN   (budget of %ss spent)\n' "$name" "$BUDGET" | tee -a "$SUMMARY"
        FAILED=1
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "=== $name (timeout ${limit}s, $(date -u +%H:%M:%S) UTC): $*" | tee -a "$log"
    local t0=$SECONDS
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    local status=ok
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status=TIMEOUT; elif [ "$rc" -ne 0 ]; then status=FAILED; fi
    [ "$rc" -ne 0 ] && FAILED=1
    printf '%-20s %-9s rc=%-4s %4ss\n' "$name" "$status" "$rc" "$((SECONDS - t0))" | tee -a "$SUMMARY"
}

echo "hapgpu device check, $(date -u '+%Y-%m-%d %H:%M') UTC, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), budget ${BUDGET}s, results in $OUT" \
    | tee -a "$SUMMARY"

step install env.txt 150 bash "$ROOT/benchmarks/device_check.sh" --install
export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}
step environment env.txt 60 bash "$ROOT/benchmarks/device_check.sh" --env

# Every test file with a gpu mark (collecting the whole suite would compile and import far
# more than the gpu tests need). On this machine a gpu test must run: a skip is a failure.
# With pytest-xdist (in the device image), one worker per file: the CPU reference kernels that
# each file needs compile in parallel on a cold cache.
mapfile -t GPU_FILES < <(grep -rlE --include='test_*.py' 'pytest\.mark\.gpu' tests | sort)
XDIST=()
"$PY" -c "import xdist" 2>/dev/null && XDIST=(-n 4 --dist loadfile)
step pytest-gpu pytest_gpu.txt 200 env HAPGPU_BACKEND=gpu "$PY" -m pytest -m gpu -q -rsxX \
    --durations=15 -p no:cacheprovider "${XDIST[@]}" "${GPU_FILES[@]}"
if grep -qE '[0-9]+ skipped' "$OUT/pytest_gpu.txt"; then
    printf '%-20s FAILED    (gpu tests were skipped on the GPU machine)\n' "pytest-skips" | tee -a "$SUMMARY"
    FAILED=1
fi

step bench-resample bench_resample.txt 120 "$PY" benchmarks/bench_resample.py --backend gpu --repeat 3
step bench-astrodrizzle bench_astrodrizzle.txt 100 "$PY" benchmarks/bench_astrodrizzle.py --backend gpu \
    --size 1024 --n-exposures 4
step bench-detection bench_detection.txt 100 "$PY" benchmarks/bench_detection.py --backend gpu \
    --size 2048 --sources 1000,10000 --repeat 3
step bench-align bench_align.txt 90 "$PY" benchmarks/bench_align.py --backend gpu --shape 512,512 \
    --star-density 4000

echo "total $((SECONDS - START))s; $([ $FAILED -eq 0 ] && echo 'all steps passed' || echo 'SOME STEPS FAILED')" \
    | tee -a "$SUMMARY"
exit $FAILED
