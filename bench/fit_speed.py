"""How fast is one epoch of minitrain's `fit` with `get_dls`, against two PyTorch baselines?

    python bench/fit_speed.py [--reps 7]

All in one process, on MNIST (from `load_mnist`: set MINITRAIN_DATA), MLP 784-50-10, bs=50, lr=0.5, SGD.
Each variant runs one epoch per repetition, the variants interleaved, and the median is reported:

- fit:           minitrain `fit(1, …)` with `get_dls` (shuffled training pass, then a validation pass)
- plain:         a bare loop over slices of a shuffled `torch.randperm`, with `torch.optim.SGD`
- plain+valid:   the same, followed by the same validation pass that `fit` makes
- torch DL:      `torch.utils.data.DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True)` with `torch.optim.SGD`,
                 followed by a validation pass through a torch DataLoader (batch size 100)

Targets (issue 3): fit <= 1.10x plain, fit <= 0.80x torch DL. Timings are noisy; read the ratios, not the seconds.

Then one pass over the shuffled training set with no training at all, to time the loaders alone (the training
lesson quotes these): item by item (minitrain's DataLoader given `collate_fn=collate`, which forces that path),
one gather per batch (minitrain's DataLoader), slices of a shuffled permutation, and torch's DataLoader.
"""
import argparse, contextlib, io, statistics, time
import torch, torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader as TorchDL, TensorDataset
from minitrain.data import load_mnist
from minitrain.training import MLP, Dataset, get_dls, fit, set_seed
from minitrain.training import DataLoader, collate, evaluate

def plain_model(): return nn.Sequential(nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10))

def run_fit(x, y, xv, yv, bs=50, lr=0.5):
    model = MLP(784, 50, 10)
    train_dl, valid_dl = get_dls(Dataset(x, y), Dataset(xv, yv), bs)
    with contextlib.redirect_stdout(io.StringIO()):
        fit(1, model, F.cross_entropy, torch.optim.SGD(model.parameters(), lr=lr), train_dl, valid_dl)

def plain_epoch(model, opt, x, y, bs):
    perm = torch.randperm(len(x))
    for i in range(0, len(x), bs):
        idx = perm[i:i+bs]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        opt.zero_grad()

def plain_valid(model, xv, yv, bs):
    model.eval()
    with torch.no_grad():
        tot = 0.
        for i in range(0, len(xv), bs):
            pred = model(xv[i:i+bs])
            tot += F.cross_entropy(pred, yv[i:i+bs]).item() * len(pred) + (pred.argmax(1) == yv[i:i+bs]).float().mean().item()
    model.train()

def run_plain(x, y, xv, yv, bs=50, lr=0.5, valid=False):
    model = plain_model()
    plain_epoch(model, torch.optim.SGD(model.parameters(), lr=lr), x, y, bs)
    if valid: plain_valid(model, xv, yv, 2*bs)

def run_torch_dl(x, y, xv, yv, bs=50, lr=0.5):
    model = plain_model()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for xb, yb in TorchDL(TensorDataset(x, y), batch_size=bs, shuffle=True):
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
    evaluate(model, TorchDL(TensorDataset(xv, yv), batch_size=2*bs))

def one_pass(batches):
    for xb, yb in batches: pass

def perm_slices(x, y, bs=50):
    perm = torch.randperm(len(x))
    for i in range(0, len(x), bs):
        idx = perm[i:i+bs]
        yield x[idx], y[idx]

def medians(variants, reps):
    "Median seconds of each variant, the variants interleaved `reps` times."
    times = {k: [] for k in variants}
    for rep in range(reps):
        for name, f in variants.items():
            t0 = time.perf_counter(); f(); times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=7)
    args = p.parse_args()
    (x, y), (xv, yv), _ = load_mnist()
    variants = {'fit': run_fit, 'plain': run_plain, 'plain+valid': lambda *a: run_plain(*a, valid=True), 'torch DL': run_torch_dl}
    set_seed(0)
    for name, f in variants.items(): f(x[:5000], y[:5000], xv, yv)  # warm up
    med = medians({k: (lambda f=f: f(x, y, xv, yv)) for k, f in variants.items()}, args.reps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.reps} epochs each, median seconds per epoch:")
    for k, v in med.items(): print(f"  {k:12} {v:.3f}s")
    print(f"fit / plain       = {med['fit']/med['plain']:.2f}  (target <= 1.10)")
    print(f"fit / plain+valid = {med['fit']/med['plain+valid']:.2f}")
    print(f"fit / torch DL    = {med['fit']/med['torch DL']:.2f}  (target <= 0.80)")
    ds = Dataset(x, y)
    loaders = {'item by item': lambda: one_pass(DataLoader(ds, 50, shuffle=True, collate_fn=collate)),
               'one gather':   lambda: one_pass(DataLoader(ds, 50, shuffle=True)),
               'perm slices':  lambda: one_pass(perm_slices(x, y)),
               'torch DL':     lambda: one_pass(TorchDL(TensorDataset(x, y), batch_size=50, shuffle=True))}
    lmed = medians(loaders, args.reps)
    print("one shuffled pass over the training set in batches of 50, no training, median seconds:")
    for k, v in lmed.items(): print(f"  {k:12} {v:.3f}s  ({v/lmed['perm slices']:.1f}x perm slices)")

if __name__ == '__main__': main()
