"""The ResNet lesson's two models on all of MNIST: the deeper plain CNN and the ResNet, each trained as the lesson does.

    python bench/resnet.py [--epochs 5] [--bs 256]

50,000 training images and 10,000 validation images, normalised; AdamW with a 1cycle schedule up to 6e-2 for the plain
CNN and 2e-2 for the ResNet, as the course trains them; seed 42. Prints each model's validation accuracy after each
epoch and its seconds an epoch. (The lesson trains both on 4,000 images for 2 epochs, so that it runs in seconds.)
"""
import argparse, contextlib, io, time
from functools import partial
import torch, torch.nn.functional as F
from torch import nn, optim
from torch.optim import lr_scheduler
from minitrain.data import load_mnist
from minitrain.cli import cnn_images
from minitrain.datasets import DataLoaders
from minitrain.training import Dataset, DataLoader, accuracy, set_seed
from minitrain.conv import conv
from minitrain.learner import TrainLearner, DeviceCB, MetricsCB
from minitrain.init import init_weights
from minitrain.sgd import BatchSchedCB
from minitrain.resnet import act_gr, get_resnet

def plain_cnn(act=act_gr, nfs=(8, 16, 32, 64, 128), norm=nn.BatchNorm2d):
    "The lesson's deeper plain CNN: a stride-1 convolution, then stride-2 ones of `nfs`, then 10 scores."
    layers = [conv(1, 8, stride=1, act=act, norm=norm)]
    layers += [conv(nfs[i], nfs[i + 1], act=act, norm=norm) for i in range(len(nfs) - 1)]
    return nn.Sequential(*layers, conv(nfs[-1], 10, act=None, norm=norm, bias=True), nn.Flatten())

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--bs', type=int, default=256)
    args = p.parse_args()
    (x_train, y_train), (x_valid, y_valid), _ = load_mnist()
    x_train, x_valid = cnn_images(x_train, x_valid)   # normalised, as (N, 1, 28, 28): the command line's CNN images
    dls = DataLoaders(DataLoader(Dataset(x_train, y_train), args.bs, shuffle=True),
                      DataLoader(Dataset(x_valid, y_valid), 2 * args.bs))
    print(f"{torch.get_num_threads()} threads, batches of {args.bs}, {args.epochs} epochs")
    for name, make, lr in [('plain CNN', lambda: plain_cnn(), 6e-2), ('ResNet', lambda: get_resnet(act_gr), 2e-2)]:
        set_seed(42)
        model = make().apply(partial(init_weights, leaky=0.1))
        sched = partial(lr_scheduler.OneCycleLR, max_lr=lr, total_steps=args.epochs * len(dls.train))
        learn = TrainLearner(model, dls, F.cross_entropy, lr=lr, opt_func=optim.AdamW,
                             cbs=[DeviceCB(), MetricsCB(accuracy=accuracy), BatchSchedCB(sched)])
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()): learn.fit(args.epochs)
        took = (time.perf_counter() - start) / args.epochs
        accs = ' '.join(f"{r['accuracy']:.4f}" for r in learn.history if not r['train'])
        print(f"{name:10} {sum(p.numel() for p in model.parameters()):>9,} parameters, {took:.1f} s an epoch; "
              f"validation accuracy by epoch: {accs}")

if __name__ == '__main__': main()
