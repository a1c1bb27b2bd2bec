"A learner's notebook that used `from miniai.training import *` runs with `from minitrain.training import *`."
import contextlib, io
import pytest, torch
import torch.nn.functional as F
from torch import nn

def test_star_import_gives_the_course_api():
    ns = {}
    exec('from minitrain.training import *', ns)
    for name in ['accuracy', 'report', 'Dataset', 'fit', 'get_dls', 'Optimizer', 'DataLoader', 'Sampler', 'BatchSampler',
                 'collate', 'set_seed']:
        assert name in ns, name
    assert not any(k.startswith('_') and k != '__builtins__' for k in ns)

def toy(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 5, generator=g) * 0.1 + nn.functional.one_hot(y, 5).float()
    return x, y

@pytest.mark.parametrize('make_opt', [lambda p: torch.optim.SGD(p, lr=0.5), lambda p: torch.optim.Adam(p, lr=0.01),
                                      lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)])
def test_fit_with_torch_optimizers(make_opt):
    from minitrain.training import Dataset, fit, get_dls, set_seed
    set_seed(0)
    x, y = toy()
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        loss, acc = fit(3, model, F.cross_entropy, make_opt(model.parameters()), *get_dls(Dataset(x, y), Dataset(x, y), 16))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].split() == ['2', f'{loss:.4f}', f'{acc:.4f}']
    assert acc > 0.9

def test_dataset_indexing():
    from minitrain.training import Dataset
    x, y = toy(10)
    ds = Dataset(x, y)
    assert len(ds) == 10
    assert torch.equal(ds[3][0], x[3]) and ds[3][1] == y[3]
    xb, yb = ds[2:5]; assert torch.equal(xb, x[2:5]) and torch.equal(yb, y[2:5])
    xb, yb = ds[torch.tensor([4, 0])]; assert torch.equal(yb, y[[4, 0]])

def test_get_dls_shapes_and_order():
    from minitrain.training import Dataset, get_dls, set_seed
    x, y = toy(100)
    set_seed(3)
    train_dl, valid_dl = get_dls(Dataset(x, y), Dataset(x, y), 10)
    assert [len(yb) for _, yb in valid_dl] == [20] * 5
    assert torch.equal(torch.cat([yb for _, yb in valid_dl]), y)          # validation: in order
    seen = torch.cat([yb for _, yb in train_dl])
    assert not torch.equal(seen, y) and torch.equal(seen.sort().values, y.sort().values)  # training: shuffled, complete
