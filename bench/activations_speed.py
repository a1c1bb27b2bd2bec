"""What does watching the activations cost? An epoch of the initialisation lesson's CNN with `ActivationStats`, against none.

    python bench/activations_speed.py [--reps 7] [--threads 2] [--n 10240]

The CNN is the lesson's last: `get_model(GeneralRelu(leak=0.1, sub=0.4), norm=nn.BatchNorm2d)`, 14 leaf modules (5
convolutions, 4 batch norms, 4 GeneralRelus, a Flatten). One training epoch of `--n` MNIST images (from `load_mnist`: set
MINITRAIN_DATA) in batches of 1024 with `MomentumLearner`, per variant and repetition, interleaved; medians of `--reps`:

- none:        no hooks
- all leaves:  `ActivationStats` on all 14 leaf modules (mean, std and a 40-bin histogram of each output, per batch)
- activations: `ActivationStats` on the 4 GeneralRelus, as the course uses it
- no histogram: hooks on all 14 leaves keeping only the mean and the std, to show what the histograms cost

Target (issue 16): all leaves <= 1.3x none. Read the ratios, not the seconds: the machine is shared and noisy.

Where the time goes, on a 2-core CPU: `torch.histc` of the 1.6 M values of the first layer's output takes about 4 ms, one
value every 2.5 ns on one thread, while that layer's convolution takes about 1.2 ms; the std about 1 ms, the mean 0.15 ms.
Tried for the histogram, all with counts equal to histc's and none faster: `torch.bincount` of the bin indices, also of
pairs and triples of them (fewer, larger counts); `scatter_add_` into 1-D and per-row 2-D counts; `index_add_`; histc on
two halves in parallel (`torch.jit.fork`); histc of bfloat16 or of the integer bin indices; NumPy's histogram and
bincount. `torch.std_mean` is slower than `std` and `mean` apart here (5.4 ms against 1.4). So the statistics stay the
course's, computed once per batch where the activations are; on a GPU they also stay there until the epoch ends.
"""
import argparse, statistics, time
from functools import partial
import torch, torch.nn.functional as F
from torch import nn
from minitrain.data import load_mnist
from minitrain.training import Dataset, DataLoader, set_seed
from minitrain.learner import MomentumLearner, DataLoaders, DeviceCB
from minitrain.activations import ActivationStats, HooksCallback
from minitrain.init import GeneralRelu, init_weights, get_model

def is_leaf(m): return not list(m.children())

def mean_std(hook, mod, inp, outp):
    "The mean and std of each output, as `append_stats` keeps them, without the histogram."
    if not hasattr(hook, 'stats'): hook.stats = ([], [])
    acts = outp.detach()
    hook.stats[0].append(acts.mean())
    hook.stats[1].append(acts.std())

VARIANTS = {'none': lambda: [], 'all leaves': lambda: [ActivationStats(is_leaf)],
            'activations': lambda: [ActivationStats(lambda m: isinstance(m, GeneralRelu))],
            'no histogram': lambda: [HooksCallback(mean_std, is_leaf)]}

def epoch(dls, cbs):
    set_seed(0)
    model = get_model(partial(GeneralRelu, leak=0.1, sub=0.4), norm=nn.BatchNorm2d).apply(partial(init_weights, leaky=0.1))
    learn = MomentumLearner(model, dls, F.cross_entropy, lr=0.2, cbs=[DeviceCB(), *cbs])
    start = time.perf_counter()
    learn.fit(1, valid=False)
    return time.perf_counter() - start, cbs

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--n', type=int, default=10240)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    (x_tr, y_tr), _, _ = load_mnist()
    x, y = x_tr[:a.n].view(-1, 1, 28, 28), y_tr[:a.n]
    x = (x - x.mean()) / x.std()
    dls = DataLoaders(DataLoader(Dataset(x, y), 1024, shuffle=True), DataLoader(Dataset(x[:1024], y[:1024]), 1024))
    times = {k: [] for k in VARIANTS}
    for rep in range(a.reps + 1):
        for name, make in VARIANTS.items():
            t, cbs = epoch(dls, make())
            if rep: times[name].append(t)   # the first round warms up
            if cbs and rep == 1: print(f'{name}: {len(cbs[0])} modules hooked, {len(cbs[0].hooks[0].stats[0])} batches each')
    base = statistics.median(times['none'])
    print(f'{a.n} images in batches of 1024, {a.threads} threads, medians of {a.reps}:')
    for name, ts in times.items():
        print(f'  {name:12s} {statistics.median(ts):6.2f} s   {statistics.median(ts) / base:.2f}x')

if __name__ == '__main__': main()
