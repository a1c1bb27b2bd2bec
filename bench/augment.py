"""The ResNet with augmentation on all of MNIST: how far a longer 1cycle run goes when each image is shifted.

    python bench/augment.py [--epochs 10] [--bs 256] [--lr 0.01] [--padding 2]

50,000 training and 10,000 validation images, normalised; the ResNet lesson's ResNet (`get_resnet(act_gr)`, Kaiming's
init for its leak); AdamW with 1cycle up to `--lr`; each training batch shifted by up to `--padding` pixels
(`RandomCrop(28, padding)`, a draw for each image), validation untouched; seed 42. Prints the validation accuracy after
each epoch, the seconds an epoch, and the accuracy of the last model averaged with itself on the images rolled one
pixel left and right (test-time augmentation with shifts, which, unlike flips, keep a digit a digit; MNIST's border is
background, so a roll by one pixel is a shift).
"""
import argparse, contextlib, io, time
from functools import partial
import torch, torch.nn.functional as F
from torch import optim
from torch.optim import lr_scheduler
from minitrain.data import load_mnist
from minitrain.cli import cnn_images
from minitrain.datasets import DataLoaders
from minitrain.training import Dataset, DataLoader, accuracy, set_seed
from minitrain.learner import TrainLearner, DeviceCB, MetricsCB
from minitrain.init import init_weights, BatchTransformCB
from minitrain.sgd import BatchSchedCB
from minitrain.resnet import act_gr, get_resnet
from minitrain.augment import RandomCrop

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--bs', type=int, default=256)
    p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--padding', type=int, default=2)
    args = p.parse_args()
    (x_train, y_train), (x_valid, y_valid), _ = load_mnist()
    x_train, x_valid = cnn_images(x_train, x_valid)   # normalised, as (N, 1, 28, 28): the command line's CNN images
    dls = DataLoaders(DataLoader(Dataset(x_train, y_train), args.bs, shuffle=True),
                      DataLoader(Dataset(x_valid, y_valid), 2 * args.bs))
    crop = RandomCrop(28, padding=args.padding)
    aug = BatchTransformCB(lambda b: (crop(b[0]), b[1]), on_val=False)
    set_seed(42)
    model = get_resnet(act_gr).apply(partial(init_weights, leaky=0.1))
    sched = partial(lr_scheduler.OneCycleLR, max_lr=args.lr, total_steps=args.epochs * len(dls.train))
    learn = TrainLearner(model, dls, F.cross_entropy, lr=args.lr, opt_func=optim.AdamW,
                         cbs=[DeviceCB(), MetricsCB(accuracy=accuracy), BatchSchedCB(sched), aug])
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()): learn.fit(args.epochs)
    took = (time.perf_counter() - start) / args.epochs
    print(f"{torch.get_num_threads()} threads, batches of {args.bs}, {args.epochs} epochs of 1cycle up to {args.lr}, "
          f"shifts of up to {args.padding} pixels: {took:.1f} s an epoch")
    print('validation accuracy by epoch:', ' '.join(f"{r['accuracy']:.4f}" for r in learn.history if not r['train']))
    preds, targs = learn.capture_preds()
    shifted = [learn.capture_preds(cbs=[BatchTransformCB(lambda b, d=d: (torch.roll(b[0], d, dims=-1), b[1]), on_train=False)])[0]
               for d in (-1, 1)]
    tta = (preds.softmax(1) + sum(q.softmax(1) for q in shifted)) / 3
    print(f"the last model: {(preds.argmax(1) == targs).float().mean():.4f}; "
          f"with test-time shifts of one pixel left and right: {(tta.argmax(1) == targs).float().mean():.4f}")

if __name__ == '__main__': main()
