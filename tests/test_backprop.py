"Backprop by hand against autograd: random MLPs, extreme scales, refused layers, manual_step against SGD, the callback and the CLI."
import copy, math
import pytest, torch
import torch.nn.functional as F
from torch import nn
from hypothesis import given, settings, strategies as st
from conftest import make_mnist
from minitrain.backprop import mlp_grads, manual_step, check_mlp, ManualStepCB
from minitrain.training import Dataset, DataLoader, MLP, Optimizer, accuracy, set_seed
from minitrain.learner import Learner, DataLoaders, TrainCB, MetricsCB

@st.composite
def mlps(draw):
    "A random nn.Sequential of Linear and ReLU layers, a batch for it at a random scale, and labels."
    widths = draw(st.lists(st.integers(1, 12), min_size=2, max_size=5))
    bias = draw(st.lists(st.booleans(), min_size=len(widths) - 1, max_size=len(widths) - 1))
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b, bias=bias[i]))
        if i < len(widths) - 2 and draw(st.booleans()): layers.append(nn.ReLU())
    if draw(st.booleans()): layers.insert(0, nn.ReLU())
    torch.manual_seed(draw(st.integers(0, 2**16)))
    model = nn.Sequential(*layers)
    n, scale = draw(st.integers(1, 9)), draw(st.sampled_from([1e-3, 1., 100., 1e4]))
    x = torch.randn(n, widths[0]) * scale
    y = torch.randint(0, widths[-1], (n,))
    return model, x, y

def autograd_grads(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]

def close(ours, theirs):
    "Equal to float32 rounding at the gradients' own magnitude: an element that is a sum of terms of that size, which cancel, keeps their rounding."
    scale = max(float(t.abs().max()) for t in theirs) if theirs else 0.
    for a, b in zip(ours, theirs): torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 + 1e-4 * scale)

@settings(deadline=None, max_examples=150)
@given(mlps())
def test_grads_match_autograd(case):
    model, x, y = case
    theirs = autograd_grads(model, x, y)
    before = [p.grad.clone() for p in model.parameters()]
    ours = mlp_grads(model, x, y)
    assert [g.shape for g in ours] == [p.shape for p in model.parameters()]
    assert all(torch.equal(p.grad, b) for p, b in zip(model.parameters(), before))   # .grad is left as it was
    try: close(ours, theirs)
    except AssertionError: close_to_exact(model, x, y, ours)

def term_sizes(model, x):
    "Each gradient element's sum of the sizes of its terms, if every score's gradient were 1/n: what float32 rounds at."
    m = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in m.parameters(): p.abs_()
    m.zero_grad()
    (m(x.double().abs()).sum() / len(x)).backward()
    return [p.grad for p in m.parameters()]

def close_to_exact(model, x, y, ours):
    "Where the scores' gradient cancels (a confident softmax: p - 1), float32 keeps a rounding of the terms' size: within it."
    exact = autograd_grads(copy.deepcopy(model).double(), x.double(), y)
    for a, e, t in zip(ours, exact, term_sizes(model, x)):
        assert ((a.double() - e).abs() <= 1e-5 + 1e-4 * e.abs() + 64 * torch.finfo(torch.float32).eps * t).all(), (a, e, t)

def test_grads_do_not_touch_grad_and_handle_huge_scores():
    set_seed(0)
    model = MLP(20, 8, 4)
    x, y = torch.randn(6, 20) * 1e4, torch.randint(0, 4, (6,))
    assert all(p.grad is None for p in model.parameters())
    ours = mlp_grads(model, x, y)
    assert all(p.grad is None for p in model.parameters()) and all(torch.isfinite(g).all() for g in ours)
    close(ours, autograd_grads(model, x, y))

@pytest.mark.parametrize('layer', [nn.Tanh(), nn.Dropout(0.1), nn.BatchNorm1d(4), nn.Sigmoid()])
def test_other_layers_refused_by_name_before_anything_runs(layer):
    model = nn.Sequential(nn.Linear(3, 4), layer, nn.Linear(4, 2))
    bad_input = torch.zeros(2, 99)   # the wrong width: a shape error, if anything ran before the check
    with pytest.raises(TypeError, match=f'not {type(layer).__name__}'): mlp_grads(model, bad_input, torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match=f'not {type(layer).__name__}'): manual_step(model, bad_input, torch.zeros(2, dtype=torch.long), 0.1)

def test_not_sequential_refused():
    class Net(nn.Module):
        def __init__(self): super().__init__(); self.l = nn.Linear(3, 2)
        def forward(self, x): return self.l(x)
    with pytest.raises(TypeError, match='not a Net'): check_mlp(Net())

@pytest.mark.parametrize('make', [lambda: MLP(784, 50, 10), lambda: nn.Sequential(nn.Linear(784, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(), nn.Linear(30, 10, bias=False))])
def test_manual_step_equals_sgd(make):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(500, 784, generator=g), torch.randint(0, 10, (500,), generator=g)
    set_seed(1); m1 = make()
    set_seed(1); m2 = make()
    opt = torch.optim.SGD(m2.parameters(), lr=0.5)
    for i in range(0, 500, 50):
        l1 = manual_step(m1, x[i:i+50], y[i:i+50], 0.5)
        l2 = F.cross_entropy(m2(x[i:i+50]), y[i:i+50]); l2.backward(); opt.step(); opt.zero_grad()
        assert abs(l1.item() - l2.item()) <= 1e-5
    for a, b in zip(m1.parameters(), m2.parameters()): torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert all(p.grad is None for p in m1.parameters())

def toy_dls(n=300):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 5, generator=g) * 0.3 + F.one_hot(y, 5).float()
    return DataLoaders(DataLoader(Dataset(x, y), 20, shuffle=True), DataLoader(Dataset(x, y), 40))

def test_callback_trains_like_autograd_and_sets_preds_and_loss():
    rows = []
    for cb in (ManualStepCB(), TrainCB()):
        set_seed(0)
        learn = Learner(MLP(5, 16, 3), toy_dls(), F.cross_entropy, 0.3, cbs=[cb, MetricsCB(accuracy)])
        rows.append(learn.history if learn.fit(3) else None)
    for a, b in zip(*rows):
        assert a['train'] == b['train'] and abs(a['loss'] - b['loss']) < 1e-4 and abs(a['accuracy'] - b['accuracy']) < 0.01

def test_callback_works_with_the_lr_finder():
    learn = Learner(MLP(5, 16, 3), toy_dls(3000), F.cross_entropy, cbs=[ManualStepCB()], opt_func=Optimizer)
    before = [p.detach().clone() for p in learn.model.parameters()]
    assert learn.lr_find() > 0 and len(learn.lr_finder.lrs) > 5
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))

@pytest.mark.parametrize('kw,words', [({'loss_func': F.mse_loss}, 'not of mse_loss'),
                                      ({'opt_func': lambda p, lr: torch.optim.SGD(p, lr, momentum=0.9)}, 'momentum'),
                                      ({'model': nn.Sequential(nn.Linear(5, 3), nn.Softmax(1))}, 'not Softmax')])
def test_callback_refuses_what_it_cannot_do(kw, words):
    args = {'model': MLP(5, 16, 3), 'loss_func': F.cross_entropy, 'opt_func': torch.optim.SGD} | kw
    learn = Learner(args['model'], toy_dls(), args['loss_func'], 0.1, cbs=[ManualStepCB()], opt_func=args['opt_func'])
    with pytest.raises((ValueError, TypeError), match=words): learn.fit(1)

def test_cli_backward_manual(tmp_path, cli):
    r = cli('--data', str(make_mnist(tmp_path, n_train=10_200)), '--epochs', '2', '--backward', 'manual')
    assert r.returncode == 0 and r.stderr == '', r.stderr
    assert float(r.stdout.splitlines()[-1].split()[1]) > 0.9
    bad = cli('--backward', 'numeric')
    assert bad.returncode == 2 and '--backward' in bad.stderr and bad.stderr.count('\n') == 1

def test_cli_backward_manual_refused_under_torchrun(tmp_path, cli):
    "In this process, in the environment torchrun gives its workers: refused before any work (test_distributed.py has a real launch's refusal)."
    r = cli('--data', str(make_mnist(tmp_path, n_train=10_100)), '--backward', 'manual', env={'RANK': '0', 'WORLD_SIZE': '2', 'LOCAL_RANK': '0'})
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and r.stdout == ''
    assert 'argument --backward: manual steps do not average gradients across processes' in r.stderr
