"Bad training inputs are refused before any work, with an error that names what is wrong."
import math
import pytest, torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset, DataLoader as TorchDL
from conftest import make_mnist, quiet
from minitrain.training import Dataset, DataLoader, MLP, Optimizer, fit, get_dls, set_seed

def data(n=64, n_in=784, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, n_in, generator=g), torch.randint(0, classes, (n,), generator=g)

class CountingModel(nn.Module):
    "Wraps a model and counts the batches it has been trained on, to show that no work was done."
    def __init__(self, model): super().__init__(); self.model, self.calls = model, 0
    def forward(self, x):
        if self.training: self.calls += 1
        return self.model(x)

def quiet_fit(*args, **kwargs): return quiet(fit, *args, **kwargs)[0]

@pytest.mark.parametrize('bad,word', [(10, 'has a target 10'), (-1, 'has a target -1'), (12, 'has a target 12')])
def test_labels_outside_classes(bad, word):
    x, y = data()
    y[5] = bad
    model = CountingModel(MLP())
    with pytest.raises(ValueError, match=word):
        quiet_fit(1, model, F.cross_entropy, Optimizer(model.parameters()), *get_dls(Dataset(x, y), Dataset(x, y), 16))
    assert model.calls == 0

def test_labels_checked_in_torch_loaders_too():
    x, y = data(); y[0] = 10
    model = CountingModel(MLP())
    dl = TorchDL(TensorDataset(x, y), batch_size=16)
    with pytest.raises(ValueError, match='has a target 10'): quiet_fit(1, model, F.cross_entropy, Optimizer(model.parameters()), dl, dl)
    assert model.calls == 0

def test_x_y_lengths():
    x, y = data()
    with pytest.raises(ValueError, match='x has 64, y has 63'): Dataset(x, y[:-1])

@pytest.mark.parametrize('bs', [0, -1, 2.5, None])
def test_batch_size(bs):
    x, y = data()
    with pytest.raises(ValueError, match='bs'): get_dls(Dataset(x, y), Dataset(x, y), bs)
    with pytest.raises(ValueError, match='bs'): DataLoader(Dataset(x, y), bs)

def test_empty_dataset():
    x, y = data()
    with pytest.raises(ValueError, match='empty'): get_dls(Dataset(x[:0], y[:0]), Dataset(x, y), 16)
    with pytest.raises(ValueError, match='empty'): DataLoader(Dataset(x[:0], y[:0]), 4)

@pytest.mark.parametrize('epochs', [-1, 1.5, '3'])
def test_epochs(epochs):
    x, y = data()
    model = CountingModel(MLP())
    with pytest.raises(ValueError, match='epochs'):
        quiet_fit(epochs, model, F.cross_entropy, Optimizer(model.parameters()), *get_dls(Dataset(x, y), Dataset(x, y), 16))
    assert model.calls == 0

@pytest.mark.parametrize('lr', [0, -0.5, math.nan, math.inf, '0.1', None])
def test_lr(lr):
    x, y = data()
    with pytest.raises(ValueError, match='lr'): Optimizer(MLP().parameters(), lr=lr)

@pytest.mark.parametrize('shape', [(784,), (2, 28, 28), (2, 783), (2, 785)])
def test_mlp_input_shape(shape):
    with pytest.raises(ValueError, match=r'shape \(N, 784\)'): MLP()(torch.zeros(shape))

def test_nan_loss_names_epoch_and_batch():
    x, y = data(256)
    set_seed(1)
    model = MLP()
    with pytest.raises(FloatingPointError, match=r'at epoch 0, batch \d+'):
        quiet_fit(2, model, F.cross_entropy, Optimizer(model.parameters(), lr=1e20), *get_dls(Dataset(x, y), Dataset(x, y), 16))

def test_fit_still_trains_a_cnn():
    "The shape checks live in MLP, not in fit: a CNN on 1×28×28 images trains."
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (96,), generator=g)
    x = torch.zeros(96, 1, 28, 28); x[torch.arange(96), 0, 2 + 2*y, 4:24] = 1.  # the row of a bar tells the class
    set_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8*14*14, 10))
    loss, acc = quiet_fit(15, cnn, F.cross_entropy, Optimizer(cnn.parameters(), lr=0.1), *get_dls(Dataset(x, y), Dataset(x, y), 16))
    assert acc > 0.9

def test_cli_diverging_loss_is_one_line(tmp_path, cli):
    r = cli('--data', str(make_mnist(tmp_path, n_train=10_050)), '--epochs', '1', '--lr', '1e20')
    assert r.returncode == 1 and r.stderr.count('\n') == 1, r.stderr
    assert ('at epoch 0, batch' in r.stderr or 'after epoch 0' in r.stderr) and 'Traceback' not in r.stderr
