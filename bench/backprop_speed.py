"""How fast is a training step by hand (`manual_step`) against autograd with `torch.optim.SGD`, on the same batches?

    python bench/backprop_speed.py [--reps 7]

MNIST (set MINITRAIN_DATA), the lesson's MLP 784-50-10, lr 0.5. For batch sizes 50, 500 and 5000, one epoch over the
same batches (sliced beforehand, so fetching costs nothing) each way, interleaved, median of `--reps`. Also:
- the operations each step dispatches to PyTorch (aten calls, counted with a dispatch mode), forward and backward included;
- the compute limit: the epoch's matrix-multiply FLOPs over the rate this machine reaches on one large matrix multiply.
Target (issue 10): manual <= 0.75x autograd at bs=50.
"""
import argparse, statistics, time
import torch, torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from minitrain.data import load_mnist
from minitrain.training import MLP, set_seed
from minitrain.backprop import manual_step

def autograd_epoch(model, opt, batches):
    for xb, yb in batches:
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()

def manual_epoch(model, opt, batches, lr=0.5):
    for xb, yb in batches: manual_step(model, xb, yb, lr)

class CountOps(TorchDispatchMode):
    "Counts the aten operations dispatched while it is active (autograd's backward ones included)."
    def __init__(self): super().__init__(); self.n = 0
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))

def ops_per_step(step, xb, yb):
    with CountOps() as c: step(xb, yb)
    return c.n

def matmul_rate():
    "FLOP/s of a large float32 matrix multiply (the shape of the first layer's forward pass at a batch of 5000), median of 5."
    a, b = torch.randn(5000, 784), torch.randn(784, 50)
    for _ in range(3): a @ b
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20): a @ b
        ts.append((time.perf_counter() - t0) / 20)
    return 2 * 5000 * 784 * 50 / statistics.median(ts)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=7)
    args = p.parse_args()
    (x, y), _, _ = load_mnist()
    n = len(x)
    rate = matmul_rate()
    # forward: 2*n*(784*50 + 50*10); backward: dW for both layers and dX for the second only
    flops = 2 * n * (784*50 + 50*10) + 2 * n * (784*50 + 2*50*10)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matrix multiply at {rate/1e9:.1f} GFLOP/s, "
          f"so an epoch's {flops/1e9:.2f} GFLOP take at least {flops/rate:.3f} s")
    print(f"{'bs':>5} {'autograd':>9} {'manual':>8} {'ratio':>6}   ops per step (autograd / manual)")
    for bs in (50, 500, 5000):
        batches = [(x[i:i+bs], y[i:i+bs]) for i in range(0, n, bs)]
        set_seed(0); ma = MLP(); opt = torch.optim.SGD(ma.parameters(), lr=0.5)
        set_seed(0); mm = MLP()
        runs = {'autograd': lambda: autograd_epoch(ma, opt, batches), 'manual': lambda: manual_epoch(mm, None, batches)}
        for f in runs.values(): f()   # warm up
        times = {k: [] for k in runs}
        for _ in range(args.reps):
            for k, f in runs.items():
                t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        xb, yb = batches[0]
        ops_a = ops_per_step(lambda xb, yb: autograd_epoch(ma, opt, [(xb, yb)]), xb, yb)
        ops_m = ops_per_step(lambda xb, yb: manual_step(mm, xb, yb, 0.5), xb, yb)
        print(f"{bs:>5} {med['autograd']:>8.3f}s {med['manual']:>7.3f}s {med['manual']/med['autograd']:>6.2f}   {ops_a} / {ops_m}"
              + ("   (target <= 0.75)" if bs == 50 else ""))

if __name__ == '__main__': main()
