"""The CNN recipe of `minitrain-fit --model cnn` on all of MNIST: its accuracy and time, and the Learner's cost against a bare loop.

    python bench/cnn_recipe.py [--epochs 5] [--reps 3] [--threads 2] [--skip-accuracy] [--skip-ratio]

On MNIST from `load_mnist` (set MINITRAIN_DATA): 50,000 training images, 10,000 validation images.

1. Accuracy: `minitrain.cli.fit_model('cnn', epochs)`, the command's own code, with its defaults: the optimizers lesson's
   CNN (widths 16 to 128, batch norm, GeneralRelu, Kaiming's init), inputs normalised, each training image shifted by up
   to 2 pixels, label smoothing 0.1, `Adam` with weight decay 0.01, 1cycle up to 0.04, batches of 256, seed 1. Prints the
   table of epochs, the validation accuracy after each, and the seconds per epoch (training and validation).
2. The Learner's cost: one epoch (training on shifted images, then validation) of the same recipe through the Learner,
   as the command builds it without its progress table, against a bare loop with the same model, optimizer, schedule,
   loss, shifts and item-weighted validation metrics; interleaved, after an untimed warm-up of each on a subset (the first
   fit imports more of PyTorch: a second or two that the first timed epoch would otherwise carry), medians of `--reps`.

Targets (issue 17): accuracy >= 0.992 after 5 epochs (aim: 0.993, under a minute of training); Learner <= 1.10x bare.
"""
import argparse, statistics, time
from functools import partial
import torch
from torch.optim import lr_scheduler
from minitrain.data import load_mnist
from minitrain.training import Dataset, DataLoader, accuracy, set_seed
from minitrain.learner import Learner, DataLoaders, TrainCB, DeviceCB, MetricsCB
from minitrain.init import BatchTransformCB
from minitrain.sgd import Adam, BatchSchedCB, shift_batch, random_shift
from minitrain.cli import fit_model, cnn_model, cnn_loss as LOSS, cnn_images
from init_cnn import EpochTimes   # bench/ is on the path when a script in it runs


def learner_epoch(x, y, xv, yv, bs=256, lr=4e-2):
    set_seed(0)
    dls = DataLoaders(DataLoader(Dataset(x, y), bs, shuffle=True), DataLoader(Dataset(xv, yv), 2 * bs))
    metrics = MetricsCB(accuracy=accuracy)
    metrics._log = lambda row: None
    sched = partial(lr_scheduler.OneCycleLR, max_lr=lr, total_steps=len(dls.train))
    cbs = [TrainCB(), metrics, BatchTransformCB(shift_batch, on_val=False), BatchSchedCB(sched), DeviceCB('cpu')]
    learn = Learner(cnn_model(), dls, LOSS, lr, opt_func=partial(Adam, wd=0.01), cbs=cbs)
    start = time.perf_counter()
    learn.fit(1)
    return time.perf_counter() - start

def bare_epoch(x, y, xv, yv, bs=256, lr=4e-2):
    set_seed(0)
    model = cnn_model()
    opt = Adam(model.parameters(), lr, wd=0.01)
    n = len(x)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=(n + bs - 1) // bs)
    start = time.perf_counter()
    model.train()
    idx = torch.randperm(n)
    tot_loss, tot_acc = 0., 0.
    for i in range(0, n, bs):
        s = idx[i:i+bs]
        xb, yb = random_shift(x[s]), y[s]
        preds = model(xb)
        loss = LOSS(preds, yb)
        loss.backward()
        opt.step(); sched.step(); opt.zero_grad()
        tot_loss, tot_acc = tot_loss + loss.detach() * len(yb), tot_acc + accuracy(preds.detach(), yb) * len(yb)
    train = (tot_loss / n).item(), (tot_acc / n).item()
    model.eval()
    tot_loss, tot_acc = 0., 0.
    with torch.no_grad():
        for i in range(0, len(xv), 2 * bs):
            xb, yb = xv[i:i + 2*bs], yv[i:i + 2*bs]
            preds = model(xb)
            tot_loss, tot_acc = tot_loss + LOSS(preds, yb) * len(yb), tot_acc + accuracy(preds, yb) * len(yb)
    valid = (tot_loss / len(xv)).item(), (tot_acc / len(xv)).item()
    return time.perf_counter() - start

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--skip-accuracy', action='store_true')
    p.add_argument('--skip-ratio', action='store_true')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if not a.skip_accuracy:
        timer = EpochTimes()
        import minitrain.cli as cli
        real = cli.Learner
        cli.Learner = lambda *args, cbs=(), **kw: real(*args, cbs=[*cbs, timer], **kw)   # time the command's own learner
        try: acc = fit_model('cnn', a.epochs, device='cpu')
        finally: cli.Learner = real
        print(f'recipe: validation accuracy {acc:.4f} after {a.epochs} epochs; {statistics.mean(timer.times):.1f} s/epoch, '
              f'{sum(timer.times):.0f} s in all, on {a.threads} threads')
    if not a.skip_ratio:
        (x_tr, y_tr), (x_va, y_va), _ = load_mnist()
        x_tr, x_va = cnn_images(x_tr, x_va)
        times = {'learner': [], 'bare': []}
        learner_epoch(x_tr[:2560], y_tr[:2560], x_va[:1000], y_va[:1000])   # warm-up: the first optimizer step and scheduler
        bare_epoch(x_tr[:2560], y_tr[:2560], x_va[:1000], y_va[:1000])      # import more of PyTorch, which is not the loop's cost
        for rep in range(a.reps):
            times['learner'].append(learner_epoch(x_tr, y_tr, x_va, y_va))
            times['bare'].append(bare_epoch(x_tr, y_tr, x_va, y_va))
        l, b = statistics.median(times['learner']), statistics.median(times['bare'])
        print(f'one epoch, medians of {a.reps}: learner {l:.2f} s, bare loop {b:.2f} s: {l / b:.3f}x')

if __name__ == '__main__': main()
