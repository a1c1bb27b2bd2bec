#!/usr/bin/env bash
# The CUDA checks of minitrain, for a session that is lent a GPU machine (CI has none).
#
#   bash tools/gpu_check.sh prepare   # here: copy MNIST and a fastcore wheel into .gpu/ (git-ignored through .git/info/exclude)
#   bash tools/gpu_check.sh run       # there, with .gpu carried: the CLI and the Learner on cuda, figures and a log in $OUT
#
# The GPU machine has PyTorch, matplotlib, numpy, tqdm and pytest, but not fastcore; nothing can be downloaded there.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
  mkdir -p .git/info .gpu/data/mnist
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  cp "${MINITRAIN_DATA:-../shared/data}"/mnist/*.gz .gpu/data/mnist/
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .gpu/whl "fastcore==$(python3 -c 'import fastcore; print(fastcore.__version__)')"
  du -sh .gpu ;;
run)
  out=${OUT:-/tmp/gpu_check}; mkdir -p "$out"
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD MINITRAIN_DATA=$PWD/.gpu/data PYTHONUNBUFFERED=1
  nvidia-smi -L
  fit() { python3 -c 'import sys; from minitrain.cli import main; sys.exit(main(sys.argv[1:]))' "$@"; }
  for d in cuda cpu; do echo "== --device $d"; time (fit --device "$d" --epochs 3 | tee "$out/fit_$d.txt"); done
  fit --device cuda --epochs 3 --plot "$out/run_cuda.png" | tail -2
  fit --device cuda --lr-find --plot "$out/lr_cuda.png" | tail -2
  fit --device auto --epochs 1 | tail -1
  python3 -m pytest -q -p no:cacheprovider tests/test_learner.py tests/test_api.py 2>&1 | tail -3 ;;
*) echo "usage: bash tools/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
