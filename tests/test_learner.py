"The Learner and its callbacks: event order, cancels, errors, metrics, devices, the LR finder, and bad arguments."
import contextlib, io, math
import pytest, torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset, DataLoader as TorchDL
from minitrain.training import Dataset, DataLoader, MLP, Optimizer, accuracy, fit, get_dls, set_seed
from minitrain.learner import *
from minitrain.learner import EVENTS, default_device, get_lr as _get_lr
from minitrain.progress import bar_kind as _bar_kind, ProgressCB, RecorderCB
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
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r'dls.train has float labels \(torch.float32\)'): Learner(model, dls, cbs=[TrainCB()]).fit(1)
    assert model.calls == 1 and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # one real batch, no step

def test_labels_outside_outputs_before_training():
    x, y = toy(); y[40] = 7
    model = Counting()
    dls = DataLoaders(DataLoader(Dataset(x, y), 16), DataLoader(Dataset(x, y), 16))
    with pytest.raises(ValueError, match='dls.train: labels must be class indices in \\[0, 3\\).*there is a label 7'):
        Learner(model, dls, cbs=[TrainCB()]).fit(1)   # label 7 is in the third batch: the whole dataset's labels are checked
    assert model.calls == 1

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
    assert [type(cb) for cb in learn.cbs[:2]] == [BatchCheckCB, NaNStopCB]

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
    assert lines[0].split() == ['epoch', 'train', 'accuracy', 'loss', 'time'] and len(lines) == 5
    assert [l.split()[:2] for l in lines[1:]] == [['0', 'train'], ['0', 'eval'], ['1', 'train'], ['1', 'eval']]
    assert lines[-1].split()[3] == f"{learn.history[-1]['loss']:.3f}"
    assert err == ''

def test_recorder_plot_one_epoch(tmp_path):
    rec = RecorderCB()
    learn = learner([MetricsCB(accuracy), rec])
    learn.fit(1)
    fig = rec.plot(tmp_path/'run.png')
    assert (tmp_path/'run.png').read_bytes()[:4] == b'\x89PNG'
    assert len(rec.losses) == len(learn.dls.train) and rec.valid[0][0] == len(learn.dls.train)
    import matplotlib.pyplot as plt; plt.close(fig)

# --- the course's names and semantics ---

MINIAI_LEARNER = ['CancelFitException', 'CancelBatchException', 'CancelEpochException', 'Callback', 'run_cbs', 'SingleBatchCB',
                  'to_cpu', 'MetricsCB', 'DeviceCB', 'TrainCB', 'ProgressCB', 'with_cbs', 'Learner', 'TrainLearner',
                  'MomentumLearner', 'LRFinderCB', 'lr_find']

def test_star_import_has_every_miniai_learner_name_and_no_torch_name():
    import torch.utils.data as tud, torch.optim as optim
    ns = {}
    exec('from minitrain.learner import *', ns)
    assert set(MINIAI_LEARNER) <= set(ns)
    for n in ['DataLoaders', 'def_device', 'to_device', 'collate_device', 'capture_preds']: assert n in ns, n
    assert ns['ProgressCB'].__module__ == 'minitrain.progress'
    torch_names = set(dir(torch)) | set(dir(nn)) | set(dir(F)) | set(dir(tud)) | set(dir(optim))
    assert not (set(ns) - {'__builtins__'}) & torch_names

def test_run_cbs_in_order_and_skips_missing_methods():
    seen = []
    class A(Callback):
        order = 2
        def before_fit(self, learn): seen.append(('A', learn))
    class B(Callback):
        order = -1
        def before_fit(self, learn): seen.append(('B', learn))
    run_cbs([A(), B(), Callback()], 'before_fit')
    run_cbs([A()], 'after_fit', 'learner')
    assert seen == [('B', None), ('A', None)]

def test_to_cpu_and_to_device_structures():
    x = torch.ones(2, dtype=torch.float16, requires_grad=True) * 2
    out = to_cpu({'a': x, 'b': [x, (x, torch.arange(3))]})
    assert out['a'].dtype == torch.float32 and not out['a'].requires_grad and isinstance(out['b'][1], tuple)
    assert out['b'][1][1].dtype == torch.int64
    assert to_device(torch.zeros(1)).device.type == def_device
    b = collate_device([(torch.zeros(3), 1), (torch.ones(3), 2)])
    assert b[0].shape == (2, 3) and b[1].tolist() == [1, 2] and b[0].device.type == def_device

@pytest.mark.parametrize('wrap', [lambda cbs: cbs[0], tuple, list, lambda cbs: __import__('fastcore.foundation').foundation.L(cbs)])
def test_one_callback_or_any_iterable(wrap):
    log = Log()
    learn = Learner(net(), small_dls(), cbs=wrap([TrainCB()]))
    learn.fit(1, cbs=wrap([log]))
    assert 'after_fit' in log.events() and log not in learn.cbs

def test_lr_none_until_fit_or_lr_find():
    learn = Learner(net(), small_dls(), lr=None, cbs=TrainCB())
    with pytest.raises(ValueError, match='no learning rate'): learn.fit(1)
    learn.fit(1, lr=0.1)
    assert learn.fit(1, train=False) is None   # validation alone needs no rate
    assert MomentumLearner(net(), small_dls(), F.cross_entropy).lr is None

def test_loss_func_must_be_callable():
    with pytest.raises(ValueError, match=r'loss_func must be a function.*did you mean lr=0.5'): Learner(net(), small_dls(), 0.5)
    with pytest.raises(ValueError, match='loss_func'): Learner(net(), small_dls(), 'cross_entropy')

def test_momentum_learner_keeps_a_fraction_of_the_gradients():
    set_seed(0)
    learn = MomentumLearner(net(), small_dls(), F.cross_entropy, lr=0.1, mom=0.5, cbs=SingleBatchCB())
    learn.fit(1)
    set_seed(0); m = net()
    F.cross_entropy(m(learn.batch[0]), learn.batch[1]).backward()
    grads = [p.grad.clone() for p in m.parameters()]
    # SingleBatchCB cancels in after_batch: zero_grad ran before it, leaving half of each gradient
    for p, g in zip(learn.model.parameters(), grads): torch.testing.assert_close(p.grad, g * 0.5)

def test_predict_with_an_argument_points_to_capture_preds():
    learn = learner()
    with pytest.raises(TypeError, match='capture_preds'): learn.predict(torch.zeros(2, 5))

# --- callbacks on a learner written by hand, as the course writes them ---

class HandLearner:
    "A course-style learner with only model, opt, batch, preds, loss, dls, dl and epoch (and loss_func, lr, cbs)."
    def __init__(self, model, dls, loss_func, lr, cbs): self.model, self.dls, self.loss_func, self.lr, self.cbs = model, dls, loss_func, lr, cbs
    def callback(self, nm): run_cbs(self.cbs, nm, self)
    def one_epoch(self, train):
        self.model.train(train)
        self.dl = self.dls.train if train else self.dls.valid
        try:
            self.callback('before_epoch')
            for self.batch in self.dl:
                try:
                    self.callback('before_batch')
                    self.preds = self.model(self.batch[0])
                    self.loss = self.loss_func(self.preds, self.batch[1])
                    if self.model.training:
                        self.loss.backward(); self.opt.step(); self.opt.zero_grad()
                    self.callback('after_batch')
                except CancelBatchException: pass
            self.callback('after_epoch')
        except CancelEpochException: pass
    def fit(self, n):
        self.opt = torch.optim.SGD(self.model.parameters(), self.lr)
        try:
            self.callback('before_fit')
            for self.epoch in range(n):
                self.one_epoch(True)
                with torch.no_grad(): self.one_epoch(False)
            self.callback('after_fit')
        except CancelFitException: pass
        finally: self.callback('cleanup_fit')

def test_metrics_progress_and_finder_on_a_hand_written_learner(capsys):
    set_seed(0)
    metrics = MetricsCB(accuracy=accuracy)
    learn = HandLearner(net(), small_dls(shuffle=True), F.cross_entropy, 0.3, [DeviceCB('cpu'), metrics, ProgressCB(plot=True)])
    learn.fit(2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['epoch', 'train', 'accuracy', 'loss', 'time'] and len(lines) == 5
    assert [l.split()[:2] for l in lines[1:]] == [['0', 'train'], ['0', 'eval'], ['1', 'train'], ['1', 'eval']]
    with torch.no_grad(): acc = accuracy(learn.model(learn.dls.valid.ds.x), learn.dls.valid.ds.y).item()
    assert lines[-1].split()[2] == f'{acc:.3f}' and learn.metrics is metrics
    assert float(metrics.all_metrics['loss'].compute()) == pytest.approx(float(lines[-1].split()[3]), abs=5e-4)
    # without ProgressCB, MetricsCB prints the course's dictionaries
    HandLearner(net(), small_dls(), F.cross_entropy, 0.3, [MetricsCB(accuracy=accuracy)]).fit(1)
    rows = [eval(l) for l in capsys.readouterr().out.splitlines()]
    assert [list(r) for r in rows] == [['accuracy', 'loss', 'epoch', 'train']] * 2 and rows[1]['train'] == 'eval'
    finder = LRFinderCB(gamma=1.5)
    learn = HandLearner(net(), small_dls(n=2000, bs=10, shuffle=True), F.cross_entropy, 1e-4, [finder])
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(5)
    assert finder.diverged and finder.lrs[0] == pytest.approx(1e-4) and finder.suggestion() > 1e-4
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))

# --- errors before a callback's before_fit ---

class Early(Exception): pass

@pytest.mark.parametrize('where', ['callback', 'check'])
def test_error_before_before_fit_surfaces_as_itself(where):
    class Fails(Callback):
        order = -5   # before ProgressCB and LRFinderCB have run their before_fit
        def before_fit(self, learn): raise Early('the real error')
    x, y = toy()
    if where == 'callback': learn, cbs = learner([Fails()]), []
    else:   # a guard rail's check on the first batch: float labels
        learn = Learner(net(), DataLoaders(DataLoader(Dataset(x, y.float()), 16), DataLoader(Dataset(x, y), 16)), cbs=TrainCB())
    with pytest.raises(Early if where == 'callback' else ValueError, match='the real error' if where == 'callback' else 'float labels'):
        learn.fit(1, cbs=[ProgressCB(plot=True), LRFinderCB(), RecorderCB()])
    with pytest.raises(Early if where == 'callback' else ValueError):
        learn.lr_find()

# --- capture_preds and lr_find leave the learner as it was ---

def test_capture_preds_over_the_validation_set():
    learn = learner([MetricsCB(accuracy)])
    row = learn.fit(2)
    history, opt = list(learn.history), learn.opt
    learn.model.train()
    preds, targs, inps = learn.capture_preds(inps=True)
    x, y = toy()
    assert preds.shape == (len(x), 3) and torch.equal(targs, y) and torch.equal(inps, x) and preds.device.type == 'cpu'
    assert accuracy(preds, targs).item() == pytest.approx(row['accuracy'], abs=1e-6)
    assert learn.history == history and learn.opt is opt and learn.model.training
    with torch.no_grad(): learn.model.eval(); torch.testing.assert_close(preds, learn.model(x))

def test_lr_find_keeps_history_and_mode_and_says_when_the_loss_never_rose(capsys):
    learn = learner([MetricsCB(accuracy)])
    learn.fit(1)
    history = list(learn.history)
    learn.model.eval()
    learn.lr_find(max_epochs=1)   # 8 batches from 1e-5: the loss cannot rise
    err = capsys.readouterr().err
    assert learn.history == history and not learn.model.training
    assert len(err.splitlines()) == 1 and 'never rose' in err and 'the best rate may lie past them' in err
    lrs = learn.lr_finder.lrs
    assert f'between rates {lrs[0]:.3g} and {lrs[-1]:.3g}' in err and err.startswith('lr_find: ') and lrs[0] == 1e-5

def test_lr_finder_plot_stops_at_the_divergence():
    f = LRFinderCB()
    f.losses = [2.3, 2.2, 1.8, 1.0, 0.8, 1.5, 5.0, 17.7]
    f.lrs = [1e-3 * 1.3 ** i for i in range(len(f.losses))]
    ys = list(f.plot().axes[0].lines[0].get_ydata())
    assert ys == [2.3, 2.2, 1.8, 1.0, 0.8, 1.5]   # past the starting loss the run diverged: the plot stops there

def test_lr_find_draws_its_figure_in_a_script_too(tmp_path):
    "As the course's: a figure on matplotlib's current backend (Agg here, as in a script), which plt.savefig saves."
    code = f'''
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt, torch, torch.nn.functional as F
from minitrain.datasets import DataLoaders
from minitrain.training import Dataset, DataLoader, set_seed
from minitrain.learner import MomentumLearner
set_seed(0)
x = torch.randn(512, 4); y = (x[:, 0] > 0).long()
dls = DataLoaders(DataLoader(Dataset(x, y), 16, shuffle=True), DataLoader(Dataset(x, y), 32))
assert plt.get_fignums() == []
learn = MomentumLearner(torch.nn.Linear(4, 2), dls, F.cross_entropy)
learn.lr_find()
assert plt.get_fignums() == [learn.lr_finder.fig.number], plt.get_fignums()
plt.savefig({str(tmp_path/'lr.png')!r})
'''
    import subprocess, sys
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'lr.png').stat().st_size > 5000
