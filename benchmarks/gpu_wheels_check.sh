#!/usr/bin/env bash
# Does the wheel folder (gpu_wheels.sh) install offline into what the GPU machine has, and does
# the GPU check's dry run pass there? CI runs this (.ci/run); docs/gpu_check.md.
#
#   benchmarks/gpu_wheels_check.sh [VENV] [gpu_wheels.sh options, e.g. --with-transformers]
#                                                 (VENV default: .venv-gpu-image)
#
# 1. VENV, a clean venv standing in for the GPU image: torch, transformers, peft and accelerate
#    (transformers, accelerate and huggingface-hub at the versions KINDS.md saw there) and the
#    image's other packages that the harness imports (IMAGE below); none of the packages the image
#    lacks (LACKS below), removed if a dependency or an earlier run brought them.
# 2. gpu_wheels.sh for this interpreter's version into VENV/gpu-wheels.
# 3. gpu_check.py --dry-run --wheels VENV/gpu-wheels: `pip --no-index --no-deps --target`, as on the
#    GPU machine, then every section on CPU; it must pass.
# 4. The folder installed into VENV with --no-index, and `pip check`: it holds the whole closure.
#    (The next run puts the image's versions back first.)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-gpu-image
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then VENV="$1"; shift; fi
PY="$VENV/bin/python"
IMAGE=(transformers==5.17.0 accelerate==1.15.0 huggingface-hub==1.33.0 peft
       sacrebleu pyarrow pandas numpy scipy pyyaml rich jinja2 matplotlib nvidia-ml-py psutil xxhash
       absl-py six click joblib regex tqdm attrs fsspec tokenizers safetensors)
LACKS=(trl datasets dill multiprocess nltk defusedxml jsonschema jsonschema-specifications referencing rpds-py
       pydantic pydantic-core annotated-types typing-inspection datasketch orjson rouge-score
       kernels tomlkit httpx2 httpcore2 truststore)
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
fi
"$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q "${IMAGE[@]}"
"$PY" -m pip uninstall -q -y "${LACKS[@]}" 2>/dev/null || true
if "$PY" -c "import trl" 2>/dev/null || "$PY" -c "import pydantic" 2>/dev/null; then
  echo "gpu_wheels_check.sh: $VENV still has trl or pydantic: not a stand-in for the GPU image" >&2
  exit 1
fi

version=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
WHEELS="$VENV/gpu-wheels"
benchmarks/gpu_wheels.sh --python "$version" "$@" "$WHEELS"

out=$(mktemp -d)
t0=$(date +%s)
"$PY" benchmarks/gpu_check.py --dry-run --wheels "$WHEELS" --out "$out" --work "$out/work"
echo "gpu_check.py --dry-run with the carried wheels: $(( $(date +%s) - t0 )) s"

"$PY" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
"$PY" -m pip check
rm -rf "$out"
