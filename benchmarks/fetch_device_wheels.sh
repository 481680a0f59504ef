#!/usr/bin/env bash
# Download, HERE (where PyPI is reachable), the wheels that the GPU device machine lacks.
#
# The device machine (one NVIDIA H200, Python 3.12, CuPy, Numba, numba-cuda, NumPy, SciPy,
# pytest, ...) cannot download anything. hapgpu's run-time needs that its image does not hold
# (astropy, stwcs, tweakwcs and their needs) and the reference packages the GPU tests and the
# benchmarks compare against (drizzlepac, photutils, drizzle and their needs) travel as wheels
# in the ignored folder .whl/, which the device run names in `carry`:
#
#     bash benchmarks/fetch_device_wheels.sh              # here: fills .whl/, prints the size
#     # then, with the device tool:  run(command="bash benchmarks/device_check.sh",
#     #                                   carry=[".whl"], timeout_s=540)
#
# Options:
#     --runtime-only   only what hapgpu itself needs (no drizzlepac/photutils/drizzle); the
#                      GPU tests that compare against them then fail to import there
#     --dest DIR       folder of the wheels (default .whl, relative to the repository root)
#
# Versions are pinned to the ones the project's test environment uses (cp312 manylinux wheels
# exist for each). After downloading, every wheel's Requires-Dist (extras skipped, markers
# evaluated for CPython 3.12 on x86_64 Linux) is checked against the wheels here plus the
# device's package list (DEVICE_PACKAGES below, from the device tool's KINDS.md); anything
# left over that is not in NOT_CARRIED (with its reason) makes the script fail.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEST=.whl
WITH_REFERENCE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --runtime-only) WITH_REFERENCE=0 ;;
        --dest) DEST=$2; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "fetch_device_wheels.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

# A Python with pip and `packaging` (the project's venv when active; python3 otherwise).
PY=${PYTHON:-python3}
"$PY" -c "import pip, packaging" 2>/dev/null || {
    echo "fetch_device_wheels.sh: $PY lacks pip or packaging; set PYTHON=/path/to/python" >&2; exit 2; }

# What hapgpu imports at run time (pyproject.toml dependencies) that the device image lacks,
# with their own needs. numpy, scipy, numba, rich, PyYAML, packaging, lxml, requests, attrs are
# on the device.
RUNTIME=(
    astropy==8.0.2 pyerfa==2.0.1.5 astropy-iers-data==0.2026.11.2.0.34.55
    stwcs==1.7.7 stsci.tools==4.3.1
    tweakwcs==0.9.3 gwcs==1.0.3 spherical-geometry==1.4.0 stsci.stimage==0.3.2
    asdf==6.0.0 asdf-astropy==0.11.0 asdf-standard==1.5.0 asdf-transform-schemas==0.6.0
    asdf-coordinates-schemas==0.5.1 asdf-wcs-schemas==0.5.0 semantic-version==2.10.0
    jmespath==1.1.0
    # asdf 6 needs typing-extensions>=4.16; the device's version is not known: device_check.sh
    # installs this wheel only where the device's own is older.
    typing-extensions==4.16.0
)
# The reference implementations of the tests and benchmarks (`reference` extra) and what
# `import drizzlepac` pulls in (drizzlepac/__init__ imports astrodrizzle, tweakreg, skypac, and
# astroquery through its haputils).
REFERENCE=(
    drizzlepac==3.11.0 photutils==3.0.0 drizzle==3.0.0
    stsci.skypac==1.0.12 stsci.image==2.3.11 stsci.imagestats==1.8.4 stregion==1.1.12
    fitsblender==0.4.4 simplify-polyline==0.1.0
    astroquery==0.4.11 pyvo==1.9.1 keyring==25.7.0 jaraco.classes==3.4.0
    jaraco.context==6.1.2 jaraco.functools==4.6.0 more-itertools==11.2.1
    beautifulsoup4==4.15.0 soupsieve==4.1.3 html5lib==1.1 webencodings==0.6.1
)

# Requirements deliberately not carried, with the reason (checked: none is imported by
# `import drizzlepac`, drizzlepac.cdriz, drizzlepac.astrodrizzle, drizzlepac.align, photutils).
NOT_CARRIED="
astrocut       drizzlepac declares it; only its cut-out tools import it (pulls s3fs/botocore, ~20 MiB)
bokeh          drizzlepac declares it; only the HAP diagnostic-plot modules import it
pypdf          drizzlepac declares it; only the HAP PDF report code imports it
secretstorage  keyring declares it on Linux; loaded only when a keyring backend is asked for a credential
jeepney        keyring declares it on Linux; same as secretstorage
importlib-metadata  asdf, keyring: only for Python < 3.12
backports-tarfile   jaraco.context: only for Python < 3.12
"

# The device image's Python packages (KINDS.md, "Python packages already there", 2026-11-17).
DEVICE_PACKAGES="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc
anyio attrs botorch build certifi charset-normalizer chex click cloudpickle cmake colorama
contourpy coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler
cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib
jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator
lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py
mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich
sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp"

# The wheels must never be committed: .gitignore lists .whl/; otherwise exclude it locally.
if [ "$DEST" = ".whl" ] && ! git check-ignore -q .whl/probe.whl 2>/dev/null; then
    mkdir -p .git/info && echo "/.whl/" >> .git/info/exclude
    echo "added /.whl/ to .git/info/exclude"
fi

PACKAGES=("${RUNTIME[@]}")
[ "$WITH_REFERENCE" = 1 ] && PACKAGES+=("${REFERENCE[@]}")

mkdir -p "$DEST"
rm -f "$DEST"/*.whl   # one version of each: a stale wheel of another version stops the install
# pip matches each manylinux tag exactly: the device (Python 3.12.3, glibc >= 2.35) takes any
# of these; the older tags come first so the most portable build is preferred.
PLATFORMS=(manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_24_x86_64
           manylinux_2_27_x86_64 manylinux_2_28_x86_64 manylinux_2_31_x86_64
           manylinux_2_34_x86_64 manylinux_2_35_x86_64)
PLATFORM_ARGS=()
for p in "${PLATFORMS[@]}"; do PLATFORM_ARGS+=(--platform "$p"); done

failed=()
for spec in "${PACKAGES[@]}"; do
    if ! "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
            --python-version 3.12 --implementation cp "${PLATFORM_ARGS[@]}" -d "$DEST" "$spec"; then
        failed+=("$spec")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fetch_device_wheels.sh: no cp312 manylinux wheel downloaded for: ${failed[*]}" >&2
    exit 1
fi

# Dependency closure: every requirement of every wheel is carried, on the device, or listed in
# NOT_CARRIED with its reason.
DEVICE_PACKAGES="$DEVICE_PACKAGES" NOT_CARRIED="$NOT_CARRIED" "$PY" - "$DEST" <<'PYEOF'
import os
import re
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

dest = Path(sys.argv[1])
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython",
       "extra": ""}
device = {canonicalize_name(n) for n in os.environ["DEVICE_PACKAGES"].split()}
not_carried = {canonicalize_name(line.split()[0]) for line in os.environ["NOT_CARRIED"].splitlines()
               if line.strip()}
wheels = {}
for path in sorted(dest.glob("*.whl")):
    name, version, _, _ = parse_wheel_filename(path.name)
    if name in wheels:
        sys.exit(f"two wheels of {name} in {dest}: keep one version")
    wheels[name] = (version, path)

problems = []
for name, (version, path) in wheels.items():
    with zipfile.ZipFile(path) as zf:
        meta = next(n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        msg = Parser().parsestr(zf.read(meta).decode("utf-8"))
    for text in msg.get_all("Requires-Dist") or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue  # an extra, another Python or another platform
        dep = canonicalize_name(req.name)
        if dep in wheels:
            have = wheels[dep][0]
            if req.specifier and not req.specifier.contains(have, prereleases=True):
                problems.append(f"{name} needs {req}, the wheel here is {dep} {have}")
        elif dep not in device and dep not in not_carried:
            problems.append(f"{name} needs {req}: neither carried nor on the device")
for line in problems:
    print("MISSING:", line, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"dependency closure complete: {len(wheels)} wheels; device-provided and NOT_CARRIED "
      "requirements skipped")
PYEOF

# Slim the wheels: the packages' own test suites and documentation (stsci.tools' tests alone are
# 9.7 MiB, spherical_geometry's 7.6, astroquery's 10, drizzlepac's docs 5) are never run there.
# A path with a `tests` folder in it, or under a top-level doc/, docs/ or tests/ folder, is
# dropped with its RECORD line; astropy/tests/ stays (astropy/__init__ imports its runner).
# Every remaining file is byte-identical, so its RECORD hash still holds.
"$PY" - "$DEST" <<'PYEOF'
import re
import sys
import zipfile
from pathlib import Path

KEEP = ("astropy/tests/",)


def dropped(name: str) -> bool:
    if name.startswith(KEEP):
        return False
    return "/tests/" in "/" + name or re.match(r"(docs?|tests)/", name) is not None


before = after = 0
for path in sorted(Path(sys.argv[1]).glob("*.whl")):
    before += path.stat().st_size
    with zipfile.ZipFile(path) as src:
        infos = src.infolist()
        if any(dropped(i.filename) for i in infos):
            tmp = path.with_name(path.name + ".tmp")
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
                for info in infos:
                    if dropped(info.filename):
                        continue
                    data = src.read(info)
                    if re.fullmatch(r"[^/]+\.dist-info/RECORD", info.filename):
                        lines = data.decode("utf-8").splitlines(keepends=True)
                        data = "".join(l for l in lines if not dropped(l.split(",", 1)[0])).encode()
                    out.writestr(info, data)
            tmp.replace(path)
    after += path.stat().st_size
print(f"dropped test suites and docs: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
PYEOF

size=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "wheels in $DEST: $(ls "$DEST"/*.whl | wc -l) files, $(mib "$size")"
echo "working tree that travels (tracked + untracked, not ignored): $(mib "$tree");" \
     "with the wheels: $(mib $((size + tree))) of the device tool's 64 MiB"
if [ $((size + tree)) -gt $((60 * 1048576)) ]; then
    echo "fetch_device_wheels.sh: over 60 MiB together; use --runtime-only" >&2
    exit 1
fi
