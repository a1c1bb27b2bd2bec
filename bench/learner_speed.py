"""How much does the Learner's callback machinery cost? One epoch of a Learner against a bare loop computing the same.

    python bench/learner_speed.py [--reps 21]

All in one process, on MNIST (from `load_mnist`: set MINITRAIN_DATA), MLP 784-50-10, bs=50, lr=0.5, `torch.optim.SGD`,
each variant one epoch (a shuffled training pass, then a validation pass at bs=100) per repetition, interleaved; medians
of 21 by default: with fewer, on a shared 2-core machine, the ratio wanders by 0.1.

- learner: `Learner(..., cbs=[TrainCB(), DeviceCB('cpu'), MetricsCB(accuracy=accuracy)])` with minitrain's loaders,
           and the learner's own guard rails (BatchCheckCB, NaNStopCB); MetricsCB's rows are not printed
- plain:   the same, but each event dispatched by `run_cbs` (sort the callbacks, look each method up), as the lesson's
           learner before the exported one: what looking the methods up once per fit saves
- bare:    a loop over slices of a shuffled `torch.randperm` that computes the same numbers: the loss and the accuracy
           averaged over items, for training and for validation, kept as tensors and read once per epoch

Then the dispatch alone: the events of one training batch, called on callbacks with the same methods as the learner's
(TrainCB, DeviceCB, MetricsCB and the guard rails) that do nothing, by `run_cbs` and by the learner's kept lists, in
microseconds per batch and as a share of the bare loop's time per batch.

Target (issue 8): learner <= 1.10x bare. Timings are noisy; read the ratio, not the seconds.
"""
import argparse, statistics, time
import torch, torch.nn.functional as F
from minitrain.data import load_mnist
from minitrain.training import MLP, Dataset, DataLoader, accuracy, set_seed
from minitrain.learner import Learner, DataLoaders, TrainCB, DeviceCB, MetricsCB, run_cbs

class PlainLearner(Learner):
    "The exported Learner with the lesson's plain dispatch."
    def callback(self, method_nm): run_cbs(self.cbs, method_nm, self)

def run_learner(x, y, xv, yv, bs=50, lr=0.5, cls=Learner):
    dls = DataLoaders(DataLoader(Dataset(x, y), bs, shuffle=True), DataLoader(Dataset(xv, yv), 2*bs))
    metrics = MetricsCB(accuracy=accuracy)
    metrics._log = lambda row: None
    learn = cls(MLP(), dls, F.cross_entropy, lr, cbs=[TrainCB(), DeviceCB('cpu'), metrics])
    return learn.fit(1)

def run_plain(x, y, xv, yv, bs=50, lr=0.5): return run_learner(x, y, xv, yv, bs, lr, PlainLearner)

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

BATCH_EVENTS = ['before_batch', 'predict', 'after_predict', 'get_loss', 'after_loss', 'backward', 'after_backward',
                'step', 'after_step', 'zero_grad', 'after_batch', 'cleanup_batch']

def dispatch_cost(n=20000):
    "Microseconds per training batch to dispatch its events, with `run_cbs` and with the learner's kept lists."
    from minitrain.learner import BatchCheckCB, NaNStopCB
    def nop(self, learn): pass
    shells = [type(f'{c.__name__}Shell', (c,), {e: nop for e in BATCH_EVENTS if hasattr(c, e)})
              for c in (BatchCheckCB, NaNStopCB, TrainCB, DeviceCB, MetricsCB)]
    x = torch.zeros(4, 784)
    learn = Learner(MLP(), DataLoaders([(x, torch.zeros(4, dtype=torch.long))], [(x, torch.zeros(4, dtype=torch.long))]))
    learn.cbs = [c.__new__(c) for c in shells]
    plain = PlainLearner.callback.__get__(learn)
    res = {}
    for name, call in [('run_cbs', plain), ('kept lists', learn.callback)]:
        learn._handlers = {}
        t0 = time.perf_counter()
        for _ in range(n):
            for e in BATCH_EVENTS: call(e)
        res[name] = (time.perf_counter() - t0) / n * 1e6
    return res

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=21)
    args = p.parse_args()
    (x, y), (xv, yv), _ = load_mnist()
    variants = {'learner': run_learner, 'plain': run_plain, 'bare': run_bare}
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
    print(f"plain dispatch / learner = {med['plain']/med['learner']:.2f}  (one epoch each; noisy)")
    per_batch = med['bare'] / (len(x) / 50 + len(xv) / 100) * 1e6
    for k, us in dispatch_cost().items():
        print(f"dispatch by {k:10}: {us:5.1f} us a training batch, {us / per_batch:.1%} of the bare loop's {per_batch:.0f} us a batch")

if __name__ == '__main__': main()
