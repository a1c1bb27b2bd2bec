"""Where an epoch's time goes when the data is a Hugging Face `DatasetDict`, and what decoding it once saves.

    python bench/datasets_speed.py [--reps 3] [--bs 64]

All of MNIST as `mnist_dd` builds it (60,000 training and 10,000 test images, stored as PNG bytes), the datasets
lesson's MLP, SGD at 0.2. Two ways to feed it, timed in one process, interleaved, medians of `--reps` epochs each:
- row by row: `DataLoaders.from_dd` over the dataset `with_transform` (each row decoded and made a tensor as it is
  read, by PyTorch's `DataLoader` with `collate_dict`), as the course does;
- decoded once: `as_tensors` on each split, then the training lesson's loaders (one index operation a batch).
For each, the reading alone (both splits) and a whole `fit` epoch (training and validation); then the ratios.
"""
import argparse, contextlib, io, statistics, time
import torch, torch.nn.functional as F
from minitrain.data import mnist_dd
from minitrain.datasets import DataLoaders, as_tensors, inplace, to_tensor
from minitrain.training import MLP, Dataset, fit, get_dls, set_seed

def timed(f):
    t0 = time.perf_counter(); f(); return time.perf_counter() - t0

def read(dls):
    for dl in (dls.train, dls.valid):
        for _ in dl: pass

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--bs', type=int, default=64)
    args = p.parse_args()
    dd = mnist_dd()
    @inplace
    def flat(b): b['image'] = [torch.flatten(to_tensor(o)) for o in b['image']]
    rows = DataLoaders.from_dd(dd.with_transform(flat), args.bs)
    decode = {}
    def tensors():
        (xt, yt), (xv, yv) = as_tensors(dd['train']), as_tensors(dd['test'])
        decode['loaders'] = DataLoaders(*get_dls(Dataset(xt.view(len(xt), -1), yt), Dataset(xv.view(len(xv), -1), yv), args.bs))
    once = timed(tensors)
    ways = {'row by row': rows, 'decoded once': decode['loaders']}
    set_seed(1)
    model = MLP(); opt = torch.optim.SGD(model.parameters(), lr=0.2)
    times = {(w, k): [] for w in ways for k in ('read', 'fit')}
    for _ in range(args.reps):
        for w, dls in ways.items():
            times[w, 'read'].append(timed(lambda: read(dls)))
            with contextlib.redirect_stdout(io.StringIO()):   # fit prints a line an epoch
                times[w, 'fit'].append(timed(lambda: fit(1, model, F.cross_entropy, opt, dls.train, dls.valid)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"batches of {args.bs}, {torch.get_num_threads()} threads, medians of {args.reps} epochs")
    print(f"  decoding all 70,000 images once: {once:.2f} s")
    for w in ways: print(f"  {w:13} reading {med[w, 'read']:.3f} s, a fit epoch {med[w, 'fit']:.3f} s "
                         f"(reading {med[w, 'read'] / med[w, 'fit']:.0%} of it)")
    print(f"a fit epoch row by row takes {med['row by row', 'fit'] / med['decoded once', 'fit']:.1f} times as long as decoded once;"
          f" decoding once costs {once / med['row by row', 'fit']:.2f} of an epoch row by row")

if __name__ == '__main__': main()
