"""The initialisation lesson's CNN on all of MNIST: how far Kaiming's init, normalised inputs, GeneralRelu and batch norm take it.

    python bench/init_cnn.py [--epochs 3 2] [--threads 2] [--plain]

On MNIST from `load_mnist` (set MINITRAIN_DATA): 50,000 training images, 10,000 validation images, batches of 256.
The lesson's last recipe, `get_model(GeneralRelu(leak=0.1, sub=0.4), norm=nn.BatchNorm2d)` with `init_weights(leaky=0.1)`,
inputs normalised by the training set's mean and std, `MomentumLearner` (mom 0.85) for 3 epochs at lr 0.2 and 2 at 0.05,
as the lesson does on a fifth of the data. `--plain` also trains the lesson's first model (ReLU, PyTorch's default init,
raw pixels, no normalisation layers) for the same epochs and rates, for comparison.

Prints the validation accuracy after each epoch and the seconds per epoch (training and validation). Accuracy is a
result to report, not a timed assert; the seconds depend on the machine and on what else runs on it.
"""
import argparse, time
from functools import partial
import torch, torch.nn.functional as F
from torch import nn
from minitrain.data import load_mnist
from minitrain.training import Dataset, DataLoader, accuracy, set_seed
from minitrain.learner import MomentumLearner, DataLoaders, DeviceCB, MetricsCB, Callback
from minitrain.init import GeneralRelu, init_weights, get_model

class EpochTimes(Callback):
    "Seconds per epoch, training and validation together."
    def before_fit(self, learn): self.times = []
    def before_epoch(self, learn):
        if learn.model.training: self.start = time.perf_counter()
    def after_epoch(self, learn):
        if not learn.model.training: self.times.append(time.perf_counter() - self.start)

def train(model, dls, schedule):
    "Fit `model` for each (epochs, lr) of `schedule`; the validation accuracies and the seconds, per epoch."
    accs, secs = [], []
    for epochs, lr in schedule:
        metrics, timer = MetricsCB(accuracy=accuracy), EpochTimes()
        metrics._log = lambda row: None
        learn = MomentumLearner(model, dls, F.cross_entropy, lr=lr, cbs=[DeviceCB(), metrics, timer])
        learn.fit(epochs)
        accs += [r['accuracy'] for r in learn.history if not r['train']]
        secs += timer.times
    return accs, secs

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, nargs=2, default=[3, 2], help='epochs at lr 0.2, then at lr 0.05')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--plain', action='store_true', help="also train the lesson's first, plain model")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    (x_tr, y_tr), (x_va, y_va), _ = load_mnist()
    x_tr, x_va = x_tr.view(-1, 1, 28, 28), x_va.view(-1, 1, 28, 28)
    xmean, xstd = x_tr.mean(), x_tr.std()
    def dls(tfm): return DataLoaders(DataLoader(Dataset(tfm(x_tr), y_tr), 256, shuffle=True),
                                     DataLoader(Dataset(tfm(x_va), y_va), 512))
    schedule = [(a.epochs[0], 0.2), (a.epochs[1], 0.05)]
    runs = {'recipe': (lambda: get_model(partial(GeneralRelu, leak=0.1, sub=0.4), norm=nn.BatchNorm2d)
                                .apply(partial(init_weights, leaky=0.1)), lambda x: (x - xmean) / xstd)}
    if a.plain: runs['plain'] = (lambda: get_model(), lambda x: x)
    print(f'{len(x_tr)} training images, {len(x_va)} validation, bs 256, {a.threads} threads, '
          f'{a.epochs[0]} epochs at 0.2 then {a.epochs[1]} at 0.05')
    for name, (make, tfm) in runs.items():
        set_seed(42)
        accs, secs = train(make(), dls(tfm), schedule)
        print(f"{name:7s} validation accuracy by epoch: {' '.join(f'{v:.4f}' for v in accs)};"
              f" {sum(secs) / len(secs):.1f} s/epoch, {sum(secs):.0f} s in all")

if __name__ == '__main__': main()
