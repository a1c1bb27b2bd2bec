"""How much does the Learner's callback machinery cost? One epoch of a Learner against a bare loop computing the same.

    python bench/learner_speed.py [--reps 11]

All in one process, on MNIST (from `load_mnist`: set MINITRAIN_DATA), MLP 784-50-10, bs=50, lr=0.5, `torch.optim.SGD`,
each variant one epoch (a shuffled training pass, then a validation pass at bs=100) per repetition, interleaved; medians.

- learner: `Learner(..., cbs=[TrainCB(), DeviceCB('cpu'), MetricsCB(accuracy=accuracy)])` with minitrain's loaders,
           and the learner's own guard rails (TargetCheckCB, NaNStopCB)
- bare:    a loop over slices of a shuffled `torch.randperm` that computes the same numbers: the loss and the accuracy
           averaged over items, for training and for validation, kept as tensors and read once per epoch

Target (issue 8): learner <= 1.10x bare. Timings are noisy; read the ratio, not the seconds.
"""
import argparse, statistics, time
import torch, torch.nn.functional as F
from minitrain.data import load_mnist
from minitrain.training import MLP, Dataset, DataLoader, accuracy, set_seed
from minitrain.learner import Learner, DataLoaders, TrainCB, DeviceCB, MetricsCB

def run_learner(x, y, xv, yv, bs=50, lr=0.5):
    dls = DataLoaders(DataLoader(Dataset(x, y), bs, shuffle=True), DataLoader(Dataset(xv, yv), 2*bs))
    learn = Learner(MLP(), dls, F.cross_entropy, lr, cbs=[TrainCB(), DeviceCB('cpu'), MetricsCB(accuracy=accuracy)])
    return learn.fit(1)

def bare_pass(model, opt, x, y, bs, idx=None):
    "One pass in batches of `bs` (over `idx` if given, else in order); returns the item-weighted mean loss and accuracy."
    tot_loss, tot_acc, n = 0., 0., len(x)
    for i in range(0, n, bs):
        s = idx[i:i+bs] if idx is not None else slice(i, i+bs)
        xb, yb = x[s], y[s]
        preds = model(xb)
        loss = F.cross_entropy(preds, yb)
        if opt is not None:
            loss.backward()
            opt.step()
            opt.zero_grad()
        tot_loss = tot_loss + loss.detach() * len(yb)
        tot_acc = tot_acc + accuracy(preds.detach(), yb) * len(yb)
    return (tot_loss / n).item(), (tot_acc / n).item()

def run_bare(x, y, xv, yv, bs=50, lr=0.5):
    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    train = bare_pass(model, opt, x, y, bs, torch.randperm(len(x)))
    model.eval()
    with torch.no_grad(): valid = bare_pass(model, None, xv, yv, 2*bs)
    return train, valid

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=11)
    args = p.parse_args()
    (x, y), (xv, yv), _ = load_mnist()
    variants = {'learner': run_learner, 'bare': run_bare}
    set_seed(0)
    for f in variants.values(): f(x[:5000], y[:5000], xv, yv)  # warm up
    times = {k: [] for k in variants}
    for _ in range(args.reps):
        for k, f in variants.items():
            t0 = time.perf_counter(); f(x, y, xv, yv); times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.reps} epochs each, median seconds per epoch:")
    for k, v in med.items(): print(f"  {k:8} {v:.3f}s")
    print(f"learner / bare = {med['learner']/med['bare']:.2f}  (target <= 1.10)")

if __name__ == '__main__': main()
