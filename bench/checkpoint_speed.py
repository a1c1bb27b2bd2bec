"""What checkpointing costs, and how long a resume takes to get going.

    python bench/checkpoint_speed.py [--reps 15] [--folder DIR]

All in one process, on MNIST (from `load_mnist`: set MINITRAIN_DATA): the command line's MLP run (784-50-10, bs=50,
lr=0.5, the training lesson's `Optimizer`, shuffled from a seed), two epochs per repetition (each 1,000 training
batches and a validation pass), the variants interleaved, medians of `--reps`:

- none:        no checkpoints
- epoch ends:  `CheckpointCB(folder)`: a checkpoint after each validation pass
- every 50:    `CheckpointCB(folder, every=50)`: 20 more each epoch, written by a background thread
- every 50, waiting: the same, but training waits for each write (flushed with fsync) to finish: what the thread saves

Whole runs on this shared 2-core machine vary by 10% or more from one to the next, more than the effect measured. So
the cost of every 50 is also measured inside runs: `AlternateCheckpointCB` saves after batches 50, 150, 250, …, and
each 50 batches that begin with a save is timed against the 50 that follow it, which have none, a few milliseconds
later; the median of those ratios over all runs.

Targets (issue 18): epoch ends <= 1.02x none; every 50 <= 1.05x none. Then, from a checkpoint in the middle of an epoch:
the time to read it (`find_checkpoint`), and from the start of `fit` to the end of the first resumed batch (checking the
checkpoint, putting the state back, skipping the batches done, the batch itself). Checkpoints go to `--folder` (default:
a temporary folder), which should be on the disk the runs would use. Timings are noisy; read the ratios.
"""
import argparse, shutil, statistics, tempfile, time
from pathlib import Path
import torch, torch.nn.functional as F
from minitrain.data import load_mnist
from minitrain.training import MLP, Optimizer, Dataset, DataLoader, accuracy, set_seed
from minitrain.learner import Learner, DataLoaders, TrainCB, DeviceCB, MetricsCB, Callback
from minitrain.checkpoint import CheckpointCB, find_checkpoint

class WaitingCheckpointCB(CheckpointCB):
    "A `CheckpointCB` whose training waits for each write to end."
    def save(self, learn, epoch, batch, stop=False):
        super().save(learn, epoch, batch, stop)
        self.writer.wait()

class TimedCheckpointCB(CheckpointCB):
    "A `CheckpointCB` that adds up the time training spends in it: its events, and waiting for the last write."
    spent = 0.
    def _timed(name):
        def f(self, learn):
            t = time.perf_counter()
            try: getattr(CheckpointCB, name)(self, learn)
            finally: TimedCheckpointCB.spent += time.perf_counter() - t
        return f
    before_fit, before_epoch, after_batch, after_epoch, cleanup_fit = map(_timed, ['before_fit', 'before_epoch', 'after_batch', 'after_epoch', 'cleanup_fit'])

class AlternateCheckpointCB(CheckpointCB):
    "A `CheckpointCB` that saves after training batches 50, 150, 250, … of each epoch: 50 batches after a save, 50 without."
    def after_batch(self, learn):
        if not learn.model.training: return
        self.count += 1
        if self.count % 100 == 50: self.save(learn, learn.epoch, self.count)

class Clock(Callback):
    "The time at the end of each training batch, before `CheckpointCB` (order 100) saves."
    order = 99
    def before_fit(self, learn): self.t = []
    def after_batch(self, learn):
        if learn.model.training: self.t.append(time.perf_counter())

def paired_ratios(data, folder):
    "One run of `AlternateCheckpointCB`: for each save, the time of the 50 batches it begins over the next 50's."
    shutil.rmtree(folder, ignore_errors=True)
    clock = Clock()
    learner(data, [AlternateCheckpointCB(folder), clock]).fit(2)
    t, n = clock.t, len(clock.t) // 2
    starts = [e * n + k - 1 for e in range(2) for k in range(50, n - 100 + 1, 100)]   # t[i]: just before the save
    return [(t[i + 50] - t[i]) / (t[i + 100] - t[i + 50]) for i in starts]

class FirstBatch(Callback):
    "Note the time when the fit starts, and when its first training batch ends."
    order = -10
    def before_fit(self, learn): self.t0 = time.perf_counter()
    def after_batch(self, learn):
        if learn.model.training and not hasattr(self, 't1'): self.t1 = time.perf_counter()

def learner(data, cbs=()):
    (x, y), (xv, yv) = data
    set_seed(1)
    dls = DataLoaders(DataLoader(Dataset(x, y), 50, shuffle=True, seed=1), DataLoader(Dataset(xv, yv), 100))
    metrics = MetricsCB(accuracy=accuracy)
    metrics._log = lambda row: None
    return Learner(MLP(), dls, F.cross_entropy, 0.5, cbs=[TrainCB(), DeviceCB('cpu'), metrics, *cbs], opt_func=Optimizer)

def timed(data, make_cb, folder):
    shutil.rmtree(folder, ignore_errors=True)
    learn = learner(data, [make_cb(folder)] if make_cb else [])
    t = time.perf_counter(); learn.fit(2)
    return time.perf_counter() - t

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=15)
    p.add_argument('--folder', default=None)
    a = p.parse_args()
    torch.set_num_threads(2)
    folder = Path(a.folder or tempfile.mkdtemp())/'ck'
    (x, y), (xv, yv), _ = load_mnist()
    data = ((x, y), (xv, yv))
    variants = {'none': None, 'epoch ends': CheckpointCB, 'every 50': lambda f: CheckpointCB(f, every=50),
                'every 50, waiting': lambda f: WaitingCheckpointCB(f, every=50)}
    for make in variants.values(): timed(data, make, folder)   # warm up: the first fits import more of PyTorch
    times = {k: [] for k in variants}
    for i in range(a.reps):
        keys = list(variants)[i % 4:] + list(variants)[:i % 4]   # each variant takes each place in turn
        for k in keys: times[k].append(timed(data, variants[k], folder))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"two epochs, median of {a.reps}:")
    for k, v in med.items(): print(f"  {k:18s} {v:6.3f} s  {v / med['none']:.3f}x none")
    for every in (None, 50):   # the same, measured inside: the time training spends in the callback
        spent = []
        for _ in range(a.reps):
            TimedCheckpointCB.spent = 0.
            total = timed(data, lambda f: TimedCheckpointCB(f, every=every), folder)
            spent.append(TimedCheckpointCB.spent / total)
        print(f"  {'every 50' if every else 'epoch ends':18s} training spent {statistics.median(spent):.2%} of the run in the callback")
    size = max(f.stat().st_size for f in folder.iterdir()) / 1e3
    pairs = [r for _ in range(a.reps) for r in paired_ratios(data, folder)]
    q1, med, q3 = statistics.quantiles(pairs, n=4)
    print(f"  every 50, inside runs: 50 batches beginning with a save take {med:.3f}x the next 50 "
          f"(median of {len(pairs)}; quartiles {q1:.3f}, {q3:.3f})")
    print(f"  a checkpoint is {size:.0f} kB")

    # a run stopped after 650 training batches, resumed
    shutil.rmtree(folder, ignore_errors=True)
    class Stop(Callback):
        order = 200
        def after_batch(self, learn):
            if learn.model.training and learn.iter == 649: raise KeyboardInterrupt
    try: learner(data, [CheckpointCB(folder, every=50), Stop()]).fit(1)
    except KeyboardInterrupt: pass
    stopped = folder.with_name('stopped')
    shutil.rmtree(stopped, ignore_errors=True); shutil.copytree(folder, stopped)
    reads, starts = [], []
    for _ in range(a.reps):
        shutil.rmtree(folder); shutil.copytree(stopped, folder)   # the stopped run's checkpoints, each time
        t = time.perf_counter(); fn, state = find_checkpoint(folder); reads.append(time.perf_counter() - t)
        fb = FirstBatch()
        learner(data, [CheckpointCB(folder, every=50, state=state), fb]).fit(1)
        starts.append(fb.t1 - fb.t0)
    print(f"resuming from {fn.name}: reading it {statistics.median(reads) * 1e3:.1f} ms, "
          f"from the start of fit to the end of the first resumed batch {statistics.median(starts) * 1e3:.1f} ms")
    shutil.rmtree(folder.parent, ignore_errors=True)

if __name__ == '__main__': main()
