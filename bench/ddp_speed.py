"""One process against two under torchrun (gloo, CPU): seconds per epoch of the lesson's MLP on MNIST.

    python bench/ddp_speed.py [--epochs 3]

Each configuration trains a fresh Learner (TrainCB, MetricsCB(accuracy), the learner's guard rails) for `--epochs`
epochs after one warm-up epoch and reports the median epoch (training and validation), measured inside the processes,
so start-up is not counted: one process with all threads, one process with one thread, and two processes with
one thread each (what torchrun gives them), at global batch sizes 50 and 500. Set MINITRAIN_DATA.
"""
import argparse, os, statistics, subprocess, sys, time

def worker(bs, epochs):
    "Train and print the median seconds per epoch (only rank 0 prints)."
    import torch, torch.nn.functional as F
    from minitrain.data import load_mnist
    from minitrain.training import MLP, Dataset, DataLoader, accuracy, set_seed
    from minitrain.learner import Learner, DataLoaders, TrainCB, MetricsCB, Callback
    from minitrain.distributed import DistributedCB, dist_env
    (x, y), (xv, yv), _ = load_mnist()
    set_seed(0)
    dls = DataLoaders(DataLoader(Dataset(x, y), bs, shuffle=True), DataLoader(Dataset(xv, yv), 2*bs))
    class Timer(Callback):
        def before_fit(self, learn): self.times = []
        def before_epoch(self, learn):
            if learn.training: self.t0 = time.perf_counter()
        def after_epoch(self, learn):
            if not learn.training: self.times.append(time.perf_counter() - self.t0)
    timer = Timer()
    cbs = [TrainCB(), MetricsCB(accuracy=accuracy), timer] + ([DistributedCB('cpu')] if dist_env() else [])
    learn = Learner(MLP(), dls, F.cross_entropy, 0.5, cbs=cbs)
    row = learn.fit(epochs + 1)
    if (dist_env() or (0,))[0] == 0: print(f"{statistics.median(timer.times[1:]):.3f} {row['accuracy']:.4f}")

def launch(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)
    if r.returncode: sys.exit(r.stderr[-3000:])
    return [float(v) for v in r.stdout.split()]

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--worker', type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker: return worker(args.worker, args.epochs)
    me = [__file__, '--epochs', str(args.epochs), '--worker']
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2']
    print(f"median seconds per epoch (training + validation), {args.epochs} epochs after a warm-up, and the final accuracy:")
    for bs in (50, 500):
        one = launch([sys.executable, *me, str(bs)])
        one1 = launch([sys.executable, *me, str(bs)], env={'OMP_NUM_THREADS': '1'})
        two = launch([*torchrun, *me, str(bs)])
        print(f"  bs={bs:4}: 1 process {one[0]:.3f}s (acc {one[1]:.4f}), 1 process 1 thread {one1[0]:.3f}s, "
              f"2 processes {two[0]:.3f}s (acc {two[1]:.4f}): 2 processes take {two[0]/one[0]:.2f}x as long")

if __name__ == '__main__': main()
