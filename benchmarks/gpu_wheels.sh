#!/usr/bin/env bash
# The wheels the lent GPU machine lacks, in one folder to carry there (docs/gpu_check.md).
#
#   benchmarks/gpu_wheels.sh [--python 3.12] [--with-transformers] [--with-pyarrow] [DIR]   (DIR: gpu-wheels)
#
# The GPU machine (/work/.library/device/KINDS.md) has Python 3.12 with torch, transformers, peft,
# accelerate, sacrebleu, pyarrow, pandas, numpy, scipy, pyyaml, rich, jinja2, matplotlib,
# nvidia-ml-py, psutil, xxhash, tokenizers, huggingface-hub, absl-py, attrs, click, joblib, regex,
# tqdm and six, no network, and takes at most 64 MiB of files per command. What the harness
# imports on the train-and-grade path beyond that is downloaded here, at the versions this
# project's CI runs, without dependencies (`--no-deps`: the list below is the closure), and
# rouge-score, which PyPI has as a source archive only, is built into a wheel. gpu_check.py
# installs the folder with `pip install --no-index --no-deps --target`.
#
# --with-transformers adds the transformers, peft and accelerate this project's CI runs (5.25.0,
# 0.21.2, 1.16.0) and what they need that the image lacks or has too old (huggingface-hub 2.4,
# kernels, httpx2, ...): 22 MiB more. The image's transformers (5.17 when last seen) has no
# ContinuousBatchingConfig(auto_switch_to_flash=), so the continuous engine fails there: the GPU
# check should run on the tested stack.
# --with-pyarrow adds pyarrow (48 MiB) for an image whose pyarrow is older than datasets needs
# (>= 24); not together with --with-transformers (over 64 MiB).
# --python: the target interpreter's version (compiled wheels: rpds-py, pydantic-core, orjson,
# pyarrow); 3.11 builds the folder for this machine's tests.
# The folder and the working tree must stay under 64 MiB together (checked at the end).
set -euo pipefail

PY=3.12
PYARROW=0
TRANSFORMERS=0
DIR=gpu-wheels
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PY="$2"; shift 2 ;;
    --with-pyarrow) PYARROW=1; shift ;;
    --with-transformers) TRANSFORMERS=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) echo "gpu_wheels.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) DIR="$1"; shift ;;
  esac
done

# The closure of trl, datasets, rouge-score, jsonschema, pydantic, datasketch and orjson minus
# what the image has. Bump together with the project's .venv (pip list there).
WHEELS=(
  trl==1.16.0
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
  nltk==3.10.4 defusedxml==0.7.1
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  datasketch==2.0.0
  orjson==3.13.0
)
[ "$PYARROW" = 1 ] && WHEELS+=(pyarrow==25.0.1)
[ "$TRANSFORMERS" = 1 ] && WHEELS+=(
  transformers==5.25.0 peft==0.21.2 accelerate==1.16.0 huggingface-hub==2.4.0 hf-xet==1.8.0 kernels==0.19.1 tomlkit==0.15.3
  httpx2==2.17.0 httpcore2==2.17.0 truststore==0.10.5 h11==0.16.0 anyio==4.16.0 idna==3.21
  click==8.5.1 typing-extensions==4.16.0
)
SDISTS=(rouge-score==0.1.2)

mkdir -p "$DIR"
rm -f "$DIR"/*.whl
PLATFORMS=()
for n in 28 27 24 17 5; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
  "${PLATFORMS[@]}" -d "$DIR" "${WHEELS[@]}"
python3 -m pip wheel -q --no-deps -w "$DIR" "${SDISTS[@]}"

count=$(ls "$DIR"/*.whl | wc -l)
bytes=$(cat "$DIR"/*.whl | wc -c)
# What else travels: the tracked files (and untracked, not ignored ones) of this checkout.
tree=$(cd "$(dirname "$0")/.." && git ls-files -z --cached --others --exclude-standard 2>/dev/null \
       | xargs -0 cat 2>/dev/null | wc -c)
limit=$((64 * 1024 * 1024))
mib() { awk "BEGIN {printf \"%.1f\", $1 / 1048576}"; }
echo "$DIR: $count wheels, $(mib "$bytes") MiB; with the working tree $(mib $((bytes + tree))) MiB (limit 64 MiB)"
if [ $((bytes + tree)) -ge "$limit" ]; then
  echo "gpu_wheels.sh: $DIR and the working tree are over 64 MiB together: they cannot travel to the GPU machine" >&2
  exit 1
fi
