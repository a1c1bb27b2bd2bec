"The Learner and its callbacks: event order, cancels, errors, metrics, devices, the LR finder, and bad arguments."
import contextlib, io, math
import pytest, torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset, DataLoader as TorchDL
from minitrain.training import Dataset, DataLoader, MLP, Optimizer, accuracy, fit, get_dls, set_seed
from minitrain.learner import *
from minitrain.learner import _bar_kind, _get_lr
from conftest import quiet

def toy(n=120, seed=0, n_in=5, classes=3):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randn(n, n_in, generator=g) * 0.1 + F.one_hot(y, n_in).float()
    return x, y

def small_dls(n=120, bs=16, shuffle=False):
    x, y = toy(n)
    return DataLoaders(DataLoader(Dataset(x, y), bs, shuffle=shuffle), DataLoader(Dataset(x, y), 2*bs))

def net(): return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))

class Log(Callback):
    "Records every event as (event, epoch, training, iter)."
    def __init__(self, order=0): self.order, self.seen = order, []
    def __getattr__(self, name):
        if name in EVENTS: return lambda learn: self.seen.append((name, getattr(learn, 'epoch', None), learn.training))
        raise AttributeError(name)
    def events(self): return [e for e, *_ in self.seen]

def learner(cbs=(), **kw): return Learner(net(), kw.pop('dls', None) or small_dls(), cbs=[TrainCB(), *cbs], **kw)

# --- events and cancels ---

def test_event_order_two_epochs():
    log = Log()
    learner([log], dls=DataLoaders([(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))] * 2, [(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long))])).fit(2)
    ev = log.events()
    train_batch = ['before_batch', 'after_predict', 'after_loss', 'after_backward', 'after_step', 'after_batch', 'cleanup_batch']
    valid_batch = ['before_batch', 'after_predict', 'after_loss', 'after_batch', 'cleanup_batch']
    epoch = ['before_epoch', *train_batch * 2, 'after_epoch', 'cleanup_epoch', 'before_epoch', *valid_batch, 'after_epoch', 'cleanup_epoch']
    assert ev == ['before_fit', *epoch * 2, 'after_fit', 'cleanup_fit']
    epochs = [(ep, tr) for e, ep, tr in log.seen if e == 'before_epoch']
    assert epochs == [(0, True), (0, False), (1, True), (1, False)]

def test_callbacks_run_in_order_and_fit_cbs_are_removed():
    calls = []
    class A(Callback):
        order = 5
        def before_fit(self, learn): calls.append('A')
    class B(Callback):
        order = -1
        def before_fit(self, learn): calls.append('B')
    learn = learner([A()])
    learn.fit(1, cbs=[B()])
    assert calls[-2:] == ['B', 'A']
    assert not any(isinstance(cb, B) for cb in learn.cbs) and any(isinstance(cb, A) for cb in learn.cbs)

def raiser(event, exc, when=lambda learn: True):
    class R(Callback):
        pass
    setattr(R, event, lambda self, learn: (_ for _ in ()).throw(exc()) if when(learn) else None)
    return R()

def test_cancel_batch_skips_rest_of_batch_only():
    log = Log()
    learn = learner([raiser('after_predict', CancelBatchException, lambda l: l.training and l.iter == 0), log])
    learn.fit(1)
    ev = log.events()
    first = ev[ev.index('before_batch'):ev.index('cleanup_batch') + 1]
    assert first == ['before_batch', 'cleanup_batch']            # no loss, no step, no after_batch for that batch
    assert ev.count('after_step') == len(learn.dls.train) - 1   # the other batches train
    assert ev[-2:] == ['after_fit', 'cleanup_fit']

def test_cancel_epoch_ends_just_that_epoch():
    log = Log()
    learner([raiser('after_batch', CancelEpochException, lambda l: l.training), log]).fit(2)
    ev = log.seen
    assert sum(1 for e, ep, tr in ev if e == 'after_step') == 2           # one batch per training epoch
    assert [(ep, tr) for e, ep, tr in ev if e == 'after_epoch'] == [(0, False), (1, False)]   # training epochs had no after_epoch
    assert [(ep, tr) for e, ep, tr in ev if e == 'cleanup_epoch'] == [(0, True), (0, False), (1, True), (1, False)]
    assert log.events()[-2:] == ['after_fit', 'cleanup_fit']

def test_cancel_fit_skips_after_fit_runs_cleanup():
    log = Log()
    learner([raiser('before_epoch', CancelFitException), log]).fit(3)
    assert log.events() == ['before_fit', 'cleanup_epoch', 'cleanup_fit']

class Boom(Exception): pass

def test_other_exception_propagates_after_cleanups():
    log = Log()
    learn = learner([raiser('after_loss', Boom, lambda l: l.iter == 2), log])
    with pytest.raises(Boom): learn.fit(1)
    assert log.events()[-3:] == ['cleanup_batch', 'cleanup_epoch', 'cleanup_fit']
    assert 'after_batch' in log.events() and 'after_epoch' not in log.events()

def test_single_batch_cb_lower_orders_see_after_batch():
    log = Log(order=0)
    late = Log(order=2)
    learn = learner([SingleBatchCB(), log, late])
    learn.fit(3)
    assert log.events().count('after_batch') == 1 and late.events().count('after_batch') == 0
    assert learn.iter == 0 and learn.epoch == 0

def test_subclass_defines_the_steps():
    class TrainLearner(Learner):
        def predict(self): self.preds = self.model(self.batch[0])
        def get_loss(self): self.loss = self.loss_func(self.preds, self.batch[1])
        def backward(self): self.loss.backward()
        def step(self): self.opt.step()
        def zero_grad(self): self.opt.zero_grad()
    set_seed(0); m1 = net()
    set_seed(0); m2 = net()
    TrainLearner(m1, small_dls(), lr=0.3).fit(2)
    Learner(m2, small_dls(), lr=0.3, cbs=[TrainCB()]).fit(2)
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))

def test_missing_steps_are_refused():
    with pytest.raises(ValueError, match="'predict' step: add TrainCB"): Learner(net(), small_dls()).fit(1)

def test_learner_equals_fit():
    x, y = toy(200)
    dl = lambda: (DataLoader(Dataset(x, y), 16), DataLoader(Dataset(x, y), 32))
    set_seed(3); m1 = net()
    quiet(fit, 2, m1, F.cross_entropy, torch.optim.SGD(m1.parameters(), lr=0.4), *dl())
    set_seed(3); m2 = net()
    Learner(m2, DataLoaders(*dl()), lr=0.4, cbs=[TrainCB()]).fit(2)
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))

# --- metrics ---

def test_metrics_weighted_by_items_with_short_last_batch():
    x, y = toy(50)
    model = net()
    dls = DataLoaders(DataLoader(Dataset(x, y), 16), DataLoader(Dataset(x, y), 16))  # batches of 16, 16, 16, 2
    learn = Learner(model, dls, cbs=[TrainCB(), MetricsCB(accuracy)])
    row = learn.fit(1, train=False)
    with torch.no_grad(): preds = model(x)
    assert row['epoch'] == 0 and row['train'] is False
    assert math.isclose(row['loss'], F.cross_entropy(preds, y).item(), rel_tol=1e-5)
    assert math.isclose(row['accuracy'], accuracy(preds, y).item(), rel_tol=1e-6)

class CountingAccuracy:
    "A metric object with update/compute/reset, as torcheval's."
    def __init__(self): self.reset()
    def reset(self): self.right, self.n = 0, 0
    def update(self, preds, y): self.right += int((preds.argmax(1) == y).sum()); self.n += len(y)
    def compute(self): return torch.tensor(self.right / self.n)

def test_metric_objects_and_two_rows_per_epoch():
    learn = learner([MetricsCB(acc=accuracy, counted=CountingAccuracy())])
    row = learn.fit(2)
    assert [(r['epoch'], r['train']) for r in learn.history] == [(0, True), (0, False), (1, True), (1, False)]
    assert set(row) == {'epoch', 'train', 'loss', 'acc', 'counted'} and row is learn.history[-1]
    for r in learn.history: assert math.isclose(r['acc'], r['counted'], rel_tol=1e-6)

def test_fit_returns_none_without_validation():
    assert learner([MetricsCB(accuracy)]).fit(1, valid=False) is None

def test_same_seed_same_history():
    def run():
        set_seed(5)
        learn = Learner(net(), small_dls(shuffle=True), cbs=[TrainCB(), MetricsCB(accuracy)])
        learn.fit(2)
        return learn.history
    h1, h2 = run(), run()
    assert h1 == h2
    set_seed(6)
    learn = Learner(net(), small_dls(shuffle=True), cbs=[TrainCB(), MetricsCB(accuracy)]); learn.fit(2)
    assert learn.history != h1

# --- devices ---

def test_device_cpu_and_refusals():
    cb = DeviceCB('cpu')
    assert cb.device == torch.device('cpu') and not cb.pin
    learn = learner([cb, MetricsCB(accuracy)])
    learn.fit(1)
    assert learn.batch[0].device.type == 'cpu' and not learn.dls.train.pin_memory
    for bad, words in [('gpu', "'gpu' is not a device"), ('tpu', "'tpu'"), ('xla', "'xla' is not supported")]:
        with pytest.raises(ValueError, match=words): DeviceCB(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available"): DeviceCB('cuda')
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="'mps' is not available"): DeviceCB('mps')

def test_default_device():
    want = 'cuda' if torch.cuda.is_available() else 'mps' if torch.backends.mps.is_available() else 'cpu'
    assert default_device().type == want and DeviceCB().device.type == want

def test_to_device_structures():
    b = (torch.zeros(2), [torch.ones(1)], {'a': torch.ones(3)}, 7)
    out = to_device(b, 'cpu', non_blocking=True)
    assert type(out) is tuple and isinstance(out[1], list) and out[2]['a'].shape == (3,) and out[3] == 7

class FakeDevice(DeviceCB):
    "DeviceCB's choices for a CUDA target, checked without a GPU: the device itself is the CPU."
    def __init__(self): self.device, self.pin = torch.device('cpu'), True

def test_cuda_target_pins_loaders_and_copies_non_blocking(monkeypatch):
    seen = []
    real_to = torch.Tensor.to
    def spy(t, *args, **kwargs): seen.append(kwargs.get('non_blocking')); return real_to(t, *args, **kwargs)
    monkeypatch.setattr(torch.Tensor, 'to', spy)
    dls = small_dls()
    learn = Learner(net(), dls, cbs=[TrainCB(), FakeDevice(), SingleBatchCB()])
    FakeDevice().before_fit(learn)
    assert dls.train.pin_memory and dls.valid.pin_memory
    torch_dl = TorchDL(TensorDataset(*toy(10)), batch_size=4)
    FakeDevice().before_fit(Learner(net(), DataLoaders(torch_dl, torch_dl), cbs=[TrainCB()]))
    assert torch_dl.pin_memory
    seen.clear()
    cb = FakeDevice()
    learn.batch = (torch.zeros(2, 5), torch.zeros(2))
    cb.before_batch(learn)
    assert seen == [True, True]

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_training():
    learn = learner([DeviceCB('cuda'), MetricsCB(accuracy)])
    row = learn.fit(2)
    assert next(learn.model.parameters()).device.type == 'cuda' and learn.batch[0].is_cuda and row['accuracy'] > 0.9

# --- guard rails and bad arguments ---

def test_datasets_where_loaders_are_expected():
    x, y = toy()
    for dls, name in [(DataLoaders(Dataset(x, y), DataLoader(Dataset(x, y), 4)), 'dls.train'),
                      (DataLoaders(DataLoader(Dataset(x, y), 4), TensorDataset(x, y)), 'dls.valid'),
                      ((Dataset(x, y), Dataset(x, y)), 'dls must have .train and .valid')]:
        with pytest.raises(ValueError, match=name): Learner(net(), dls, cbs=[TrainCB()])

class Counting(nn.Module):
    def __init__(self): super().__init__(); self.m, self.calls = net(), 0
    def forward(self, x):
        if self.training: self.calls += 1
        return self.m(x)

def test_float_labels_for_cross_entropy_before_training():
    x, y = toy()
    model = Counting()
    dls = DataLoaders(DataLoader(Dataset(x, y.float()), 16), DataLoader(Dataset(x, y), 16))
    with pytest.raises(ValueError, match=r'dls.train has float labels \(torch.float32\)'): Learner(model, dls, cbs=[TrainCB()]).fit(1)
    assert model.calls == 0

def test_labels_outside_outputs_before_training():
    x, y = toy(); y[3] = 7
    model = Counting()
    dls = DataLoaders(DataLoader(Dataset(x, y), 16), DataLoader(Dataset(x, y), 16))
    with pytest.raises(ValueError, match='dls.train: targets must be class indices in \\[0, 3\\).*has a target 7'): Learner(model, dls, cbs=[TrainCB()]).fit(1)
    assert model.calls == 0

def test_float_targets_fine_for_regression():
    x = torch.randn(64, 5); y = x.sum(1, keepdim=True)
    dls = DataLoaders(DataLoader(Dataset(x, y), 16), DataLoader(Dataset(x, y), 16))
    learn = Learner(nn.Linear(5, 1), dls, F.mse_loss, lr=0.05, cbs=[TrainCB(), MetricsCB()])
    assert learn.fit(20)['loss'] < 0.05

def test_empty_loader():
    x, y = toy()
    with pytest.raises(ValueError, match='dls.valid is an empty loader'):
        Learner(net(), DataLoaders(DataLoader(Dataset(x, y), 4), []), cbs=[TrainCB()])

@pytest.mark.parametrize('lr', [0, -1, math.nan, '0.1'])
def test_bad_lr(lr):
    with pytest.raises(ValueError, match='lr'): Learner(net(), small_dls(), lr=lr)
    with pytest.raises(ValueError, match='lr'): learner().fit(1, lr=lr)

def test_bad_epochs():
    with pytest.raises(ValueError, match='epochs'): learner().fit(-1)

def test_nan_stop_names_epoch_and_batch():
    with pytest.raises(FloatingPointError, match=r'training loss became (nan|inf).* at epoch 0, batch \d+'): learner(lr=1e20).fit(2)

def test_guards_are_the_learners_own():
    learn = learner()
    assert [type(cb) for cb in learn.cbs[:2]] == [TargetCheckCB, NaNStopCB]

# --- the LR finder ---

def test_lr_finder_restores_weights_and_stops():
    set_seed(0)
    learn = learner(dls=small_dls(n=2000, bs=10, shuffle=True))
    before = [p.detach().clone() for p in learn.model.parameters()]
    lr = learn.lr_find(start_lr=1e-4, gamma=1.5)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    f = learn.lr_finder
    assert len(f.lrs) == len(f.losses) and len(f.lrs) < 200
    assert all(math.isclose(b / a, 1.5) for a, b in zip(f.lrs, f.lrs[1:]))
    assert not math.isfinite(f.losses[-1]) or f.losses[-1] > 3 * min(f.losses)
    assert isinstance(lr, float) and f.lrs[0] / 10 <= lr <= f.lrs[-1]
    assert learn.lr_finder not in learn.cbs

def test_lr_finder_with_our_optimizer():
    learn = Learner(net(), small_dls(n=2000, bs=10), cbs=[TrainCB()], opt_func=Optimizer)
    learn.lr_find()
    assert _get_lr(learn.opt) > 1e-5

# --- progress ---

def test_progress_table_and_no_bars_off_a_terminal(capsys):
    assert _bar_kind() is None   # pytest captures stderr: no terminal, so no bars and nothing on stderr
    learn = learner([MetricsCB(accuracy), ProgressCB()])
    learn.fit(2)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ['epoch', 'phase', 'loss', 'accuracy', 'time'] and len(lines) == 5
    assert [l.split()[:2] for l in lines[1:]] == [['0', 'train'], ['0', 'valid'], ['1', 'train'], ['1', 'valid']]
    assert lines[-1].split()[2] == f"{learn.history[-1]['loss']:.4f}"
    assert err == ''

def test_recorder_plot_one_epoch(tmp_path):
    rec = RecorderCB()
    learn = learner([MetricsCB(accuracy), rec])
    learn.fit(1)
    fig = rec.plot(tmp_path/'run.png')
    assert (tmp_path/'run.png').read_bytes()[:4] == b'\x89PNG'
    assert len(rec.losses) == len(learn.dls.train) and rec.valid[0][0] == len(learn.dls.train)
    import matplotlib.pyplot as plt; plt.close(fig)
