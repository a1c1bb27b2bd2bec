"""What checkpointing costs, and how long a resume takes to get going.

    python bench/checkpoint_speed.py [--reps 15] [--folder DIR] [--threads 2]

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
later; the median of those ratios over all runs. The same measure, taken of checkpoints that stop part of the way,
says where a checkpoint's time goes: a callback that saves nothing (the measure's own error); taking and copying the
state only; that and `torch.save` into memory, with no file; the whole checkpoint, in the background; and the whole
checkpoint with training waiting for it. Each is given as a ratio and as the milliseconds that the 50 batches with a
save took beyond the 50 without. Last, the whole checkpoint written by a process instead of a thread
(`ProcessCheckpointCB`): a process has an interpreter lock of its own, as `torch.distributed.checkpoint.async_save`'s
`AsyncCheckpointerType.PROCESS` writer has.

The cost of a whole checkpoint inside runs also gives the cost of the two epoch-end ones in a run, steadier than the
whole runs' ratio. Targets (issue 18): epoch ends <= 1.02x none; every 50 <= 1.05x none.

Then, from a checkpoint in the middle of an epoch: the time to read it (`find_checkpoint`), and from the start of `fit`
to the end of the first resumed batch (checking the checkpoint, putting the state back, skipping the batches done, the
batch itself). Checkpoints go to `--folder` (default: a temporary folder), which should be on the disk the runs would
use. Training runs on `--threads` of PyTorch's threads, 2 by default, as on the 2-core machine the figures come from;
with fewer than the machine's cores, a writer process has a core of its own. Timings are noisy; read the ratios.
"""
import argparse, io, multiprocessing as mp, shutil, signal, statistics, tempfile, time
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

class SaveNothing(AlternateCheckpointCB):
    "Saves nothing: what the measure gives when there is nothing to measure."
    def save(self, learn, epoch, batch, stop=False): pass

class TakeOnly(AlternateCheckpointCB):
    "Takes and copies the state as a checkpoint does, and writes nothing."
    def write(self, fn, state, pos): pass

class SerialiseOnly(AlternateCheckpointCB):
    "Takes the state, and the writer thread serialises it with `torch.save` into memory: no file."
    def write(self, fn, state, pos): torch.save(state, io.BytesIO())

class AlternateWaitingCB(AlternateCheckpointCB, WaitingCheckpointCB):
    "`AlternateCheckpointCB`'s saves, with training waiting for each write to end."

class Slot(int):
    "The place of a tensor in the list of shared tensors that a `ProcessWriter` fills."

def split(x, tensors):
    "`x` with each tensor put in `tensors` and replaced by its `Slot`."
    if torch.is_tensor(x): tensors.append(x); return Slot(len(tensors) - 1)
    if isinstance(x, dict): return {k: split(v, tensors) for k, v in x.items()}
    if isinstance(x, (list, tuple)): return type(x)(split(o, tensors) for o in x)
    return x

def fill(x, tensors):
    "Undo `split`: each `Slot` of `x` replaced by its tensor."
    if isinstance(x, Slot): return tensors[x]
    if isinstance(x, dict): return {k: fill(v, tensors) for k, v in x.items()}
    if isinstance(x, (list, tuple)): return type(x)(fill(o, tensors) for o in x)
    return x

def write_from(conn, shared, folder, keep):
    "The writer process: for each (file, state with slots, position) from `conn`, `CheckpointCB.write` it."
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cb = CheckpointCB(folder, keep=keep)
    while (job := conn.recv()) is not None:
        fn, skeleton, pos = job
        cb.write(fn, fill(skeleton, shared), pos)
        conn.send(True)

class ProcessWriter:
    "A `BackgroundWriter` whose writes run in a forked process, with an interpreter lock of its own; the tensors go through shared memory."
    def __init__(self, folder, keep): self.folder, self.keep, self.proc, self.shapes, self.busy = folder, keep, None, None, False
    def wait(self):
        if self.busy: self.conn.recv(); self.busy = False
    def close(self):
        self.wait()
        if self.proc: self.conn.send(None); self.proc.join(); self.proc = None
    def submit(self, f, fn, state, pos):
        self.wait()
        tensors = []
        skeleton = split(state, tensors)
        shapes = [(t.shape, t.dtype) for t in tensors]
        if shapes == self.shapes:
            for b, t in zip(self.shared, tensors): b.copy_(t)
        else:   # a writer for tensors of these shapes, which it inherits in shared memory
            self.close()
            self.shared, self.shapes = [t.share_memory_() for t in tensors], shapes   # the snapshot's own copies
            self.conn, theirs = mp.Pipe()
            self.proc = mp.get_context('fork').Process(target=write_from, daemon=True,
                                                       args=(theirs, self.shared, self.folder, self.keep))
            self.proc.start()
        self.conn.send((fn, skeleton, pos)); self.busy = True

class ProcessCheckpointCB(AlternateCheckpointCB):
    "`AlternateCheckpointCB`, its writes done by a `ProcessWriter` instead of a thread."
    def __init__(self, path, **kw): super().__init__(path, **kw); self.writer = ProcessWriter(self.path, self.keep)
    def cleanup_fit(self, learn): super().cleanup_fit(learn); self.writer.close()

class Clock(Callback):
    "The time at the end of each training batch, before `CheckpointCB` (order 100) saves."
    order = 99
    def before_fit(self, learn): self.t = []
    def after_batch(self, learn):
        if learn.model.training: self.t.append(time.perf_counter())

def paired(data, folder, cb=AlternateCheckpointCB):
    "One run of `cb`: for each save, the 50 batches it begins and the next 50, as (ratio of times, difference, next 50's time)."
    shutil.rmtree(folder, ignore_errors=True)
    clock = Clock()
    learner(data, [cb(folder), clock]).fit(2)
    t, n = clock.t, len(clock.t) // 2
    starts = [e * n + k - 1 for e in range(2) for k in range(50, n - 100 + 1, 100)]   # t[i]: just before the save
    on_off = [(t[i + 50] - t[i], t[i + 100] - t[i + 50]) for i in starts]
    return [(on / off, on - off, off) for on, off in on_off]

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
    p.add_argument('--threads', type=int, default=2, help="PyTorch's threads for training (fewer than the cores leaves one to a writer process)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
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
    stages = {'saving nothing': SaveNothing, 'taking the state': TakeOnly, '+ torch.save into memory': SerialiseOnly,
              'the whole checkpoint': AlternateCheckpointCB, 'the same, training waiting': AlternateWaitingCB,
              'the same, written by a process': ProcessCheckpointCB}
    for cb in stages.values(): paired(data, folder, cb)   # warm up
    found = {k: [] for k in stages}
    for _ in range(a.reps):
        for k, cb in stages.items(): found[k] += paired(data, folder, cb)
    off = statistics.median([o for pairs in found.values() for *_, o in pairs]) * 1e3
    print(f"  every 50, inside runs: 50 batches beginning with a save against the next 50, which took {off:.1f} ms "
          f"(medians of {len(found['saving nothing'])}):")
    for k, pairs in found.items():
        q1, mid, q3 = statistics.quantiles([r for r, *_ in pairs], n=4)
        ms = statistics.median([d for _, d, _ in pairs]) * 1e3
        print(f"    {k:31s} {mid:.3f}x (quartiles {q1:.3f}, {q3:.3f}), {ms:+.2f} ms")
    ms = statistics.median([d for _, d, _ in found['the whole checkpoint']]) * 1e3
    print(f"  epoch ends, from that cost: two checkpoints of {ms:.2f} ms in a run of {med['none']:.3f} s, "
          f"{1 + 2 * ms / 1e3 / med['none']:.3f}x none")
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
