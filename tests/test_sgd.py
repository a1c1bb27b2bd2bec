"Optimizers and schedules: each from-scratch optimizer and schedule against PyTorch's, over many steps; the callbacks."
import math
import pytest, torch
import torch.nn.functional as F
from functools import partial
from hypothesis import given, settings, strategies as st
from torch import nn, optim
from torch.optim import lr_scheduler
from minitrain.sgd import *
from minitrain.sgd import SGD, RMSProp, Adam
from minitrain.training import Dataset, DataLoader
from minitrain.learner import Learner, DataLoaders, TrainCB, Callback, CancelFitException

FAST = settings(max_examples=30, deadline=None)

def run(make, shapes, n_steps, scale, seed, frozen=False):
    "The parameters after `n_steps` of the optimizer `make(params)` on random gradients of size `scale`."
    g = torch.Generator().manual_seed(seed)
    ps = [torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_() for s in shapes]
    opt = make(ps)
    for i in range(n_steps):
        for j, p in enumerate(ps):
            p.grad = None if frozen and j == 0 and i % 3 else torch.randn(*p.shape, generator=g, dtype=torch.float64) * scale
        opt.step()
    return ps, opt

shapes = st.lists(st.lists(st.integers(1, 5), min_size=1, max_size=3), min_size=1, max_size=4)
common = dict(shapes=shapes, n_steps=st.integers(1, 30), scale=st.sampled_from([1e-4, 1., 1e3]), seed=st.integers(0, 2**16),
              frozen=st.booleans())

def same(ours, theirs, **kw):
    a, _ = run(ours, **kw)
    b, _ = run(theirs, **kw)
    for x, y in zip(a, b): torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)

@FAST
@given(lr=st.floats(1e-3, 1.), mom=st.sampled_from([0., 0.5, 0.9, 0.99]), damp=st.sampled_from([0., 0.1, 0.9]),
       wd=st.sampled_from([0., 1e-4, 0.1]), **common)
def test_sgd_is_torchs(lr, mom, damp, wd, **kw):
    same(lambda ps: SGD(ps, lr, mom=mom, wd=wd, dampening=damp),
         lambda ps: optim.SGD(ps, lr, momentum=mom, weight_decay=wd, dampening=damp), **kw)

@FAST
@given(lr=st.floats(1e-4, 1e-1), alpha=st.sampled_from([0.9, 0.99]), eps=st.sampled_from([1e-8, 1e-5]),
       wd=st.sampled_from([0., 0.01]), mom=st.sampled_from([0., 0.9]), **common)
def test_rmsprop_is_torchs(lr, alpha, eps, wd, mom, **kw):
    same(lambda ps: RMSProp(ps, lr, alpha=alpha, eps=eps, wd=wd, mom=mom),
         lambda ps: optim.RMSprop(ps, lr, alpha=alpha, eps=eps, weight_decay=wd, momentum=mom), **kw)

@FAST
@given(lr=st.floats(1e-4, 1e-1), b1=st.sampled_from([0., 0.9]), b2=st.sampled_from([0.99, 0.999]),
       eps=st.sampled_from([1e-8, 1e-5]), wd=st.sampled_from([0., 0.01, 0.1]), decouple=st.booleans(), **common)
def test_adam_is_torchs_adamw_or_adam(lr, b1, b2, eps, wd, decouple, **kw):
    ref = optim.AdamW if decouple else optim.Adam
    same(lambda ps: Adam(ps, lr, betas=(b1, b2), eps=eps, wd=wd, decouple_wd=decouple),
         lambda ps: ref(ps, lr, betas=(b1, b2), eps=eps, weight_decay=wd), **kw)

def test_param_groups_with_their_own_settings():
    def make(cls, **kw): return lambda ps: cls([{'params': ps[:1], 'lr': 0.5}, {'params': ps[1:]}], 0.01, **kw)
    same(make(Adam, wd=0.1), make(optim.AdamW, weight_decay=0.1), shapes=[[3], [2, 2]], n_steps=10, scale=1., seed=0, frozen=True)
    same(make(SGD, mom=0.9), make(optim.SGD, momentum=0.9), shapes=[[3], [2, 2]], n_steps=10, scale=1., seed=0, frozen=True)

@pytest.mark.parametrize('make', [partial(SGD, lr=0.1, mom=0.9), partial(RMSProp, lr=0.01), partial(Adam, lr=0.01)])
def test_state_dict_round_trip_continues_the_same(make):
    "Saving the optimizer and loading it into a new one continues as if uninterrupted."
    kw = dict(shapes=[[3, 2], [4]], scale=1., seed=1, frozen=False)
    whole, _ = run(make, n_steps=10, **kw)
    ps, opt = run(make, n_steps=5, **kw)
    sd = opt.state_dict()
    again = make(ps)
    again.load_state_dict(sd)
    g = torch.Generator().manual_seed(1)
    for s in kw['shapes']: torch.randn(*s, generator=g, dtype=torch.float64)   # the initial weights' draws
    for i in range(10):
        grads = [torch.randn(*p.shape, generator=g, dtype=torch.float64) for p in ps]
        if i < 5: continue   # the first five were taken before saving
        for p, gr in zip(ps, grads): p.grad = gr
        again.step()
    for a, b in zip(ps, whole): torch.testing.assert_close(a, b, rtol=0, atol=0)

def test_pytorchs_schedulers_drive_them_and_the_lessons_optimizer_is_refused():
    from minitrain.training import Optimizer
    p = [nn.Parameter(torch.zeros(2))]
    for opt in (SGD(p, 0.1), RMSProp(p, 0.1), Adam(p, 0.1)):
        assert isinstance(opt, optim.Optimizer)
        sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)   # momentum or beta1 cycled too
        for _ in range(5): opt.step(); sched.step()
        assert opt.param_groups[0]['lr'] > 0.05
    with pytest.raises(TypeError, match='not an Optimizer'): lr_scheduler.StepLR(Optimizer(p, 0.1), 2)

def test_closure_is_evaluated_with_grad():
    p = nn.Parameter(torch.tensor([2.]))
    opt = SGD([p], 0.1)
    def closure():
        opt.zero_grad(); loss = (p ** 2).sum(); loss.backward(); return loss
    assert opt.step(closure).item() == 4. and torch.allclose(p, torch.tensor([1.6]))

# schedules from scratch

@FAST
@given(total=st.integers(2, 300), pct=st.floats(0.05, 0.95), div=st.sampled_from([5., 25.]), fdiv=st.sampled_from([1e2, 1e4]),
       max_lr=st.sampled_from([1e-3, 0.1, 2.]))
def test_one_cycle_is_onecyclelr(total, pct, div, fdiv, max_lr):
    if pct * total - 1 <= 0 or total - 1 - (pct * total - 1) <= 0: return   # PyTorch divides by 0 there too
    opt = SGD([nn.Parameter(torch.zeros(1))], max_lr)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total, pct_start=pct, div_factor=div, final_div_factor=fdiv)
    f = one_cycle(max_lr, total, pct, div, fdiv)
    for i in range(total):
        assert math.isclose(opt.param_groups[0]['lr'], f(i), rel_tol=1e-9, abs_tol=1e-15), i
        if i < total - 1: opt.step(); sched.step()

def test_cos_anneal_is_cosineannealinglr():
    opt = SGD([nn.Parameter(torch.zeros(1))], 0.3)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=50, eta_min=0.01)
    for i in range(51):
        assert math.isclose(opt.param_groups[0]['lr'], cos_anneal(0.3, 0.01, i / 50), rel_tol=1e-9), i
        opt.step(); sched.step()

# the callbacks

def dls(n=64, bs=16):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    return DataLoaders(DataLoader(Dataset(x, y), bs), DataLoader(Dataset(x, y), bs))

def test_star_import_names_and_none_of_pytorchs():
    ns = {}
    exec('from minitrain.sgd import *', ns)
    assert {'BaseSchedCB', 'BatchSchedCB', 'EpochSchedCB', 'HasLearnCB', 'RecorderCB', 'MixedPrecision'} <= set(ns)
    torch_names = set(dir(torch)) | set(dir(nn)) | set(dir(F)) | set(dir(optim)) | set(dir(lr_scheduler))
    assert not (set(ns) - {'__builtins__'}) & torch_names
    from minitrain.learner import RecorderCB as learner_rec
    assert ns['RecorderCB'] is learner_rec   # one class, whichever module is star-imported last

def test_schedulers_are_built_in_before_fit_and_step_only_in_training():
    lrs = []
    class Look(Callback):
        order = 5
        def after_batch(self, learn): lrs.append((learn.model.training, learn.opt.param_groups[0]['lr']))
    sched = partial(lr_scheduler.StepLR, step_size=1, gamma=0.5)
    Learner(nn.Linear(4, 3), dls(), lr=1., cbs=[TrainCB(), BatchSchedCB(sched), Look()]).fit(1)
    assert [lr for t, lr in lrs if t] == [0.5, 0.25, 0.125, 0.0625] and [lr for t, lr in lrs if not t] == [0.0625] * 4
    lrs.clear()
    Learner(nn.Linear(4, 3), dls(), lr=1., opt_func=partial(SGD, mom=0.9), cbs=[TrainCB(), EpochSchedCB(sched), Look()]).fit(2)
    assert [lr for t, lr in lrs] == [1.] * 4 + [0.5] * 8 + [0.25] * 4   # stepped after each training epoch

def test_recorder_records_per_training_batch_as_floats_and_plots_each():
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rec = RecorderCB(lr=lambda cb: cb.pg['lr'], mom=lambda cb: torch.tensor(cb.pg['betas'][0]))
    sched = partial(lr_scheduler.OneCycleLR, max_lr=0.1, total_steps=8)
    Learner(nn.Linear(4, 3), dls(), lr=0.1, opt_func=Adam, cbs=[TrainCB(), BatchSchedCB(sched), rec]).fit(2)
    assert len(rec.recs['lr']) == len(rec.recs['mom']) == 8 and all(type(v) is float for v in rec.recs['mom'])
    assert max(rec.recs['lr']) == pytest.approx(0.1, rel=0.05) and min(rec.recs['mom']) == pytest.approx(0.85, abs=0.01)
    fig = rec.plot()
    assert [a.get_title() for a in fig.axes] == ['lr', 'mom'] and len(fig.axes[0].lines[0].get_ydata()) == 8
    plt.close('all')

def test_has_learn_cb_only_during_the_fit():
    seen = []
    class Uses(HasLearnCB):
        def after_batch(self, learn): seen.append(self.learn is learn)
    cb = Uses()
    Learner(nn.Linear(4, 3), dls(), lr=0.1, cbs=[TrainCB(), cb]).fit(1)
    assert seen and all(seen) and cb.learn is None

def test_learner_accepts_an_optimizer_with_only_step_and_zero_grad():
    class Bare:
        def __init__(self, params, lr): self.params, self.lr = list(params), lr
        def step(self):
            with torch.no_grad():
                for p in self.params: p -= self.lr * p.grad
        def zero_grad(self):
            for p in self.params: p.grad = None
    model = nn.Linear(4, 3)
    before = model.weight.detach().clone()
    rec = RecorderCB()
    Learner(model, dls(), lr=0.1, opt_func=Bare, cbs=[TrainCB(), rec]).fit(1)
    assert not torch.equal(model.weight, before) and rec.pg is None and len(rec.losses) == 4

def cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 3, 3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())

def image_dls():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    return DataLoaders(DataLoader(Dataset(x, y), 16), DataLoader(Dataset(x, y), 16))

def losses(cbs):
    out = []
    class Keep(Callback):
        order = 20
        def after_loss(self, learn): out.append((learn.loss.dtype, learn.loss.item(), learn.preds.dtype))
    Learner(cnn(), image_dls(), lr=0.01, opt_func=Adam, cbs=[*cbs, Keep()]).fit(1, valid=False)
    return out

def test_mixed_precision_on_the_cpu_is_bfloat16_and_close_to_float32():
    full, mixed = losses([TrainCB()]), losses([MixedPrecision()])
    assert all(p == torch.float32 for _, _, p in full) and all(p == torch.bfloat16 for _, _, p in mixed)
    for (_, a, _), (_, b, _) in zip(full, mixed): assert b == pytest.approx(a, rel=0.03)
    assert [a for _, a, _ in full] != [b for _, b, _ in mixed]
    assert not torch.is_autocast_enabled('cpu')

def test_mixed_precision_leaves_autocast_after_an_error():
    class Boom(Callback):
        order = 20
        def after_predict(self, learn): raise RuntimeError('boom')
    with pytest.raises(RuntimeError, match='boom'):
        Learner(cnn(), image_dls(), lr=0.01, cbs=[MixedPrecision(), Boom()]).fit(1)
    assert not torch.is_autocast_enabled('cpu')
