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
  echo "== the CNN recipe, then MixedPrecision (float16 and a gradient scaler) against float32 on cuda"
  time (fit --device cuda --model cnn --epochs 5 | tee "$out/cnn_cuda.txt" | tail -1)
  python3 - <<'PY' | tee "$out/mixed_cuda.txt"
import torch, torch.nn.functional as F
from minitrain.training import Dataset, DataLoader, set_seed
from minitrain.learner import Learner, DataLoaders, TrainCB, DeviceCB, Callback, CancelFitException
from minitrain.sgd import MixedPrecision, Adam
from minitrain.cli import cnn_model
g = torch.Generator().manual_seed(0)
x, y = torch.randn(2048, 1, 28, 28, generator=g), torch.randint(0, 10, (2048,), generator=g)
dls = DataLoaders(DataLoader(Dataset(x, y), 256), DataLoader(Dataset(x, y), 256))
def losses(cb):
    out = []
    class Keep(Callback):
        order = 20
        def after_loss(self, learn): out.append((learn.preds.dtype, learn.loss.item()))
    set_seed(0)
    Learner(cnn_model(), dls, F.cross_entropy, 1e-2, opt_func=Adam, cbs=[cb, DeviceCB('cuda'), Keep()]).fit(1, valid=False)
    return out
full, mixed = losses(TrainCB()), losses(MixedPrecision())
print('float32 ', [round(l, 4) for _, l in full], full[0][0])
print('mixed   ', [round(l, 4) for _, l in mixed], mixed[0][0])
assert mixed[0][0] == torch.float16 and all(abs(a - b) < 0.05 * max(1, a) for (_, a), (_, b) in zip(full, mixed))
print('MixedPrecision on cuda: float16, losses within 5% of float32')
PY
  echo "== a checkpointed CUDA run stopped by SIGTERM and resumed, against an uninterrupted one (torch.equal)"
  ck=$(mktemp -d)
  fit --device cuda --epochs 2 --shuffle --save "$ck/A.pt" | tail -1
  fit --device cuda --epochs 2 --shuffle --checkpoint "$ck/D" --checkpoint-every 50 --save "$ck/B.pt" & pid=$!
  for i in $(seq 1 300); do ls "$ck/D"/*.pt >/dev/null 2>&1 && break; sleep 0.1; done
  kill -TERM $pid; wait $pid || echo "exit status $? (143 expected)"
  fit --device cuda --epochs 2 --shuffle --checkpoint "$ck/D" --checkpoint-every 50 --save "$ck/B.pt" | tail -1
  python3 -c "import sys, torch; a, b = (torch.load(f, weights_only=True) for f in sys.argv[1:]); print('same tensors:', all(torch.equal(a[k], b[k]) for k in a))" "$ck/A.pt" "$ck/B.pt" | tee "$out/resume_cuda.txt"
  python3 -m pytest -q -p no:cacheprovider tests/test_learner.py tests/test_api.py 2>&1 | tail -3 ;;
*) echo "usage: bash tools/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
