"A learner's notebook that used `from miniai.training import *` runs with `from minitrain.training import *`."
import contextlib, copy, io
import pytest, torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from conftest import quiet

COURSE = ['accuracy', 'report', 'Dataset', 'fit', 'get_dls']
LESSON = ['Model', 'logsumexp', 'log_softmax', 'nll', 'cross_entropy', 'MLP', 'Optimizer', 'set_seed']

def test_star_import_is_the_course_and_the_lesson():
    ns = {}
    exec('from minitrain.training import *', ns)
    assert sorted(k for k in ns if k != '__builtins__') == sorted(COURSE + LESSON)

def test_star_import_leaves_torch_names_alone():
    import torch.utils.data as tud
    ns = {}
    exec('from torch.utils.data import DataLoader, Sampler, BatchSampler, default_collate\nfrom minitrain.training import *', ns)
    for name in ['DataLoader', 'Sampler', 'BatchSampler', 'default_collate']: assert ns[name] is getattr(tud, name), name

def test_from_scratch_pieces_import_by_name():
    from minitrain.training import DataLoader, Sampler, BatchSampler, collate, fetch
    import torch.utils.data as tud
    assert DataLoader is not tud.DataLoader and Sampler is not tud.Sampler

def test_model_registers_its_layers():
    from minitrain.training import Model
    model = Model(784, 50, 10)
    params = list(model.parameters())
    assert [p.shape for p in params] == [(50, 784), (50,), (10, 50), (10,)]
    assert [type(l) for l in model.layers] == [nn.Linear, nn.ReLU, nn.Linear]   # the seed's loop walks model.layers
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(torch.rand(4, 784)), torch.tensor([1, 2, 3, 4])).backward()
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

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
    (loss, acc), out = quiet(fit, 3, model, F.cross_entropy, make_opt(model.parameters()), *get_dls(Dataset(x, y), Dataset(x, y), 16))
    lines = out.splitlines()
    assert len(lines) == 3 and lines[-1].split() == ['2', f'{loss:.4f}', f'{acc:.4f}']
    assert acc > 0.9

def run(seed, opt_cls, x, y):
    "Two epochs of `fit` from `seed`; returns what it printed and the final parameters."
    from minitrain.training import MLP, Dataset, fit, get_dls, set_seed
    set_seed(seed)
    model = MLP(5, 16, 3)
    _, out = quiet(fit, 2, model, F.cross_entropy, opt_cls(model.parameters(), lr=0.5), *get_dls(Dataset(x, y), Dataset(x, y), 10))
    return out, list(model.parameters())

def test_same_seed_same_run_and_our_optimizer_is_sgd():
    from minitrain.training import Optimizer
    x, y = toy()
    o1, p1 = run(7, torch.optim.SGD, x, y)
    o2, p2 = run(7, torch.optim.SGD, x, y)
    o3, p3 = run(8, torch.optim.SGD, x, y)
    o4, p4 = run(7, Optimizer, x, y)
    assert o1 == o2 and all(torch.equal(a, b) for a, b in zip(p1, p2))
    assert not all(torch.equal(a, b) for a, b in zip(p1, p3))
    for a, b in zip(p1, p4): torch.testing.assert_close(a, b, rtol=0, atol=1e-5)

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

# --- How a batch is fetched: one gather only where the dataset really is tensors ---

class IntOnly:
    "Mixin: a `__getitem__` with a per-item transform that accepts only a Python int, as a file-reading dataset would."
    def __getitem__(self, i):
        if type(i) is not int: raise TypeError(f'an int index, please, not {type(i).__name__}')
        self.calls += 1
        x, y = super().__getitem__(i)
        return x * 2, y

def int_only(base, *tensors):
    cls = type(f'IntOnly{base.__name__}', (IntOnly, base), {'calls': 0})
    return cls(*tensors)

@pytest.mark.parametrize('base', ['Dataset', 'TensorDataset'])
def test_overridden_getitem_is_fetched_item_by_item(base):
    from minitrain.training import DataLoader, Dataset
    x, y = toy(23)
    ds = int_only(Dataset if base == 'Dataset' else TensorDataset, x, y)
    batches = list(DataLoader(ds, 5))
    assert [len(yb) for _, yb in batches] == [5, 5, 5, 5, 3] and ds.calls == 23
    assert torch.equal(torch.cat([xb for xb, _ in batches]), x * 2) and torch.equal(torch.cat([yb for _, yb in batches]), y)

def test_int_only_dataset_trains_with_fit():
    from minitrain.training import Dataset, fit, get_dls, set_seed
    x, y = toy()
    set_seed(0)
    ds = int_only(Dataset, x, y)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    (loss, acc), _ = quiet(fit, 3, model, F.cross_entropy, torch.optim.SGD(model.parameters(), lr=0.5), *get_dls(ds, ds, 16))
    assert acc > 0.9

def test_unchanged_getitem_takes_one_gather():
    from minitrain.training import DataLoader, Dataset, _gathers
    class Renamed(Dataset): pass   # a subclass that keeps Dataset's __getitem__
    x, y = toy(10)
    for ds in [Dataset(x, y), Renamed(x, y), TensorDataset(x, y)]: assert _gathers(ds)
    assert not _gathers(int_only(Dataset, x, y)) and not _gathers([(x[0], y[0])])

class Batched(torch.utils.data.Dataset):
    "A dataset with PyTorch's batched `__getitems__`, counting its calls."
    def __init__(self, x, y): self.x, self.y, self.batch_calls, self.item_calls = x, y, [], 0
    def __len__(self): return len(self.x)
    def __getitem__(self, i): self.item_calls += 1; return self.x[i], self.y[i]
    def __getitems__(self, idxs): self.batch_calls.append(list(idxs)); return [(self.x[i], self.y[i]) for i in idxs]

def test_getitems_is_asked_once_per_batch():
    from minitrain.training import DataLoader
    x, y = toy(12)
    ds = Batched(x, y)
    batches = list(DataLoader(ds, 5))
    assert ds.batch_calls == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]] and ds.item_calls == 0
    assert all(type(i) is int for b in ds.batch_calls for i in b)
    assert torch.equal(torch.cat([xb for xb, _ in batches]), x)

def test_getitems_like_torch_loader():
    "Our loader hands `__getitems__`'s list to the collate function, as torch's own loader does."
    from minitrain.training import DataLoader
    x, y = toy(12)
    ours = list(DataLoader(Batched(x, y), 5))
    theirs = list(torch.utils.data.DataLoader(Batched(x, y), batch_size=5))
    for (a, b), (c, d) in zip(ours, theirs): assert torch.equal(a, c) and torch.equal(b, d)

def test_collate_fn_gets_a_list_of_items_and_wins():
    from minitrain.training import DataLoader, Dataset
    x, y = toy(7)
    seen = []
    def collate_fn(items):
        seen.append(items)
        return len(items)
    for ds in [Dataset(x, y), TensorDataset(x, y), Batched(x, y)]:
        seen.clear()
        assert list(DataLoader(ds, 3, collate_fn=collate_fn)) == [3, 3, 1]
        assert all(isinstance(b, list) and len(b[0]) == 2 and torch.equal(b[0][0], x[3*i]) for i, b in enumerate(seen))

def test_collate_numbers_become_tensors():
    from minitrain.training import DataLoader
    items = [(torch.full((2,), float(i)), i) for i in range(5)]   # a list of items with plain int labels
    xb, yb = next(iter(DataLoader(items, 5)))
    assert xb.shape == (5, 2) and torch.equal(yb, torch.arange(5))

def test_torch_loader_over_our_dataset():
    "The course's idiom: PyTorch's DataLoader over a minitrain Dataset."
    from minitrain.training import Dataset
    x, y = toy(23)
    batches = list(torch.utils.data.DataLoader(Dataset(x, y), batch_size=5))
    assert [len(yb) for _, yb in batches] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat([xb for xb, _ in batches]), x) and torch.equal(torch.cat([yb for _, yb in batches]), y)
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([yb for _, yb in torch.utils.data.DataLoader(Dataset(x, y), batch_size=5, shuffle=True, generator=g)])
    assert torch.equal(seen.sort().values, y.sort().values)
