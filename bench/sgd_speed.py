"""What does a step of minitrain's `Adam` cost? Against `torch.optim.AdamW(foreach=True)`, on the CNN recipe's parameters.

    python bench/sgd_speed.py [--reps 21] [--steps 50] [--threads 2] [--widths 8 16 32 64]

The parameters are those of `get_model(GeneralRelu, nfs=[1, *widths], norm=nn.BatchNorm2d)`: 14 tensors at the default
widths (5 convolutions' weights, 4 batch norms' weights and biases, the last bias). Each repetition sets the same random
gradients, then times `--steps` steps of each optimizer, interleaved; medians of `--reps` repetitions, in microseconds
per step:

- minitrain:  `minitrain.sgd.Adam(wd=0.01)`, one `_foreach_` call per operation and group
- torch:      `torch.optim.AdamW(weight_decay=0.01, foreach=True)`, the reference
- for-loop:   `torch.optim.AdamW(weight_decay=0.01, foreach=False)`, PyTorch's one-parameter-at-a-time path
- lesson:     the optimizers lesson's `Adam`, the course's, written one parameter at a time in Python

Target (issue 17): minitrain <= 1.10x torch. Read the ratios, not the microseconds.
"""
import argparse, statistics, time
from functools import partial
import torch
from torch import nn
from minitrain.sgd import Adam
from minitrain.init import GeneralRelu, get_model

class LessonAdam:
    "The lesson's Adam, as the course writes it: one parameter at a time."
    def __init__(self, params, lr, wd=0., beta1=0.9, beta2=0.99, eps=1e-5):
        self.params, self.lr, self.wd, self.beta1, self.beta2, self.eps, self.i = list(params), lr, wd, beta1, beta2, eps, 0
    def step(self):
        with torch.no_grad():
            for p in self.params:
                if self.wd != 0: p *= 1 - self.lr * self.wd
                if not hasattr(p, 'avg'): p.avg, p.sqr_avg = torch.zeros_like(p), torch.zeros_like(p)
                p.avg = self.beta1 * p.avg + (1 - self.beta1) * p.grad
                unbias_avg = p.avg / (1 - self.beta1 ** (self.i + 1))
                p.sqr_avg = self.beta2 * p.sqr_avg + (1 - self.beta2) * p.grad ** 2
                unbias_sqr_avg = p.sqr_avg / (1 - self.beta2 ** (self.i + 1))
                p -= self.lr * unbias_avg / (unbias_sqr_avg + self.eps).sqrt()
        self.i += 1

OPTS = {'minitrain': lambda ps: Adam(ps, 1e-3, wd=0.01),
        'torch': lambda ps: torch.optim.AdamW(ps, 1e-3, weight_decay=0.01, foreach=True),
        'for-loop': lambda ps: torch.optim.AdamW(ps, 1e-3, weight_decay=0.01, foreach=False),
        'lesson': lambda ps: LessonAdam(ps, 1e-3, wd=0.01)}

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=21)
    p.add_argument('--steps', type=int, default=50)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--widths', type=int, nargs='+', default=[8, 16, 32, 64])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    models = {k: get_model(partial(GeneralRelu, leak=0.1, sub=0.4), nfs=[1, *a.widths], norm=nn.BatchNorm2d) for k in OPTS}
    params = {k: list(m.parameters()) for k, m in models.items()}
    opts = {k: make(params[k]) for k, make in OPTS.items()}
    n = sum(p.numel() for p in params['torch'])
    times = {k: [] for k in OPTS}
    for rep in range(a.reps + 1):
        g = torch.Generator().manual_seed(rep)
        grads = [torch.randn(p.shape, generator=g) for p in params['torch']]
        for k, opt in opts.items():
            for p, gr in zip(params[k], grads): p.grad = gr.clone()
            start = time.perf_counter()
            for _ in range(a.steps): opt.step()
            if rep: times[k].append((time.perf_counter() - start) / a.steps * 1e6)   # the first round warms up
    base = statistics.median(times['torch'])
    print(f'{len(params["torch"])} parameter tensors, {n:,} numbers, {a.threads} threads, medians of {a.reps} x {a.steps} steps:')
    for k, ts in times.items():
        print(f'  {k:10s} {statistics.median(ts):8.1f} us/step   {statistics.median(ts) / base:.2f}x')

if __name__ == '__main__': main()
