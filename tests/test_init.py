"Initialisation and normalisation: each from-scratch piece against PyTorch's, on ordinary and extreme inputs."
import math
import pytest, torch
import torch.nn.functional as F
from functools import partial
from hypothesis import given, settings, strategies as st
from torch import nn
from torch.nn import init
from fastcore.test import test_close as close   # not test_*: pytest would collect it
from minitrain.init import *
from minitrain.init import LayerNorm
from minitrain.training import Dataset, DataLoader, set_seed
from minitrain.learner import Learner, DataLoaders, TrainCB, Callback

FAST = settings(max_examples=40, deadline=None)
scales = st.sampled_from([1e-3, 1., 1e3])

def batch(shape, scale, offset, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale + offset

def test_star_import_has_the_course_names_and_none_of_pytorchs():
    ns = {}
    exec('from minitrain.init import *', ns)
    course = ['clean_ipython_hist', 'clean_tb', 'clean_mem', 'BatchTransformCB', 'GeneralRelu', 'plot_func', 'init_weights',
              'lsuv_init', 'conv', 'get_model']
    assert set(course) <= set(ns)
    assert {'def_device', 'to_device', 'collate_device'} <= set(ns)   # the course's conv module's names
    torch_names = set(dir(torch)) | set(dir(nn)) | set(dir(F)) | set(dir(init))
    assert not (set(ns) - {'__builtins__'}) & torch_names, (set(ns) & torch_names)

# BatchNorm against nn.BatchNorm1d/2d, in float64 so that only the formulas can differ

@FAST
@given(n=st.integers(2, 6), c=st.integers(1, 5), hw=st.sampled_from([(), (1,), (3,), (2, 3), (1, 1)]),
       scale=scales, offset=st.sampled_from([0., 5., -1e3]), mom=st.floats(0.01, 0.99), steps=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_batchnorm_matches_pytorch(n, c, hw, scale, offset, mom, steps, seed):
    shape = (n, c, *hw)
    if n * math.prod(hw) < 2: return   # one value per channel: both refuse (tested below)
    ref = (nn.BatchNorm1d if len(hw) < 2 else nn.BatchNorm2d)(c, momentum=mom).double()
    ours = BatchNorm(c, mom=mom).double()
    ours.load_state_dict(ref.state_dict())
    for i in range(steps):   # training: outputs, gradients of the input and both parameters, running statistics
        x = batch(shape, scale, offset, seed + i)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), ref(xb)
        close(ya, yb, eps=1e-8)
        w = batch(shape, 1., 0., seed + 100 + i)   # a random upstream gradient
        (ya * w).sum().backward(); (yb * w).sum().backward()
        close(xa.grad, xb.grad, eps=1e-7 * max(1, 1 / scale))
        close(ours.weight.grad, ref.weight.grad, eps=1e-7); close(ours.bias.grad, ref.bias.grad, eps=1e-7)
        ours.zero_grad(); ref.zero_grad()
        close(ours.running_mean, ref.running_mean, eps=1e-9 * max(1, abs(offset), scale))
        close(ours.running_var, ref.running_var, eps=1e-9 * max(1, scale ** 2))
    assert ours.num_batches_tracked == ref.num_batches_tracked == steps
    ours.eval(); ref.eval()   # eval: the running statistics
    x = batch(shape, scale, offset, seed + 999)
    close(ours(x), ref(x), eps=1e-8)

def test_batchnorm_state_dict_round_trips_with_pytorchs():
    ours, ref = BatchNorm(3), nn.BatchNorm2d(3)
    ours(torch.randn(4, 3, 5, 5) * 3 + 2)
    assert ref.load_state_dict(ours.state_dict()).missing_keys == []
    assert ours.load_state_dict(ref.state_dict()).missing_keys == []

def test_batchnorm_refuses_one_value_per_channel():
    with pytest.raises(ValueError, match='one value per channel'): BatchNorm(3)(torch.randn(1, 3))
    with pytest.raises(ValueError): nn.BatchNorm1d(3)(torch.randn(1, 3))   # as PyTorch does
    bn = BatchNorm(3).eval()
    assert bn(torch.randn(1, 3)).shape == (1, 3)   # in eval, the running statistics: no batch needed

def test_batchnorm_float32_with_large_offset_is_close_to_pytorch():
    x = torch.randn(64, 8, 4, 4) * 1e-2 + 100.   # a hard case: small spread on a large mean
    close(BatchNorm(8)(x), nn.BatchNorm2d(8)(x), eps=2e-2)

# LayerNorm against nn.LayerNorm over all dimensions but the batch

@FAST
@given(n=st.integers(1, 4), rest=st.sampled_from([(3,), (2, 3), (4, 2, 2), (1, 5, 1)]), scale=scales,
       offset=st.sampled_from([0., 7., -1e3]), seed=st.integers(0, 2**16))
def test_layernorm_matches_pytorch(n, rest, scale, offset, seed):
    if math.prod(rest) < 2: return
    x = batch((n, *rest), scale, offset, seed)
    ours, ref = LayerNorm(rest[0]).double(), nn.LayerNorm(list(rest)).double()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    close(ya, yb, eps=1e-8)
    w = batch((n, *rest), 1., 0., seed + 1)
    (ya * w).sum().backward(); (yb * w).sum().backward()
    close(xa.grad, xb.grad, eps=1e-7 * max(1, 1 / scale))
    # one scale and one shift for the whole item: their gradients are the sums of PyTorch's per-element ones
    close(ours.mult.grad, ref.weight.grad.sum(), eps=1e-7); close(ours.add.grad, ref.bias.grad.sum(), eps=1e-7)

# Kaiming

@FAST
@given(fan_in=st.integers(1, 5000), leak=st.floats(0, 1))
def test_kaiming_std_is_pytorchs(fan_in, leak):
    close(kaiming_std(fan_in, leak), init.calculate_gain('leaky_relu', leak) / math.sqrt(fan_in), eps=1e-12)

@pytest.mark.parametrize('shape,leak', [((512, 16, 3, 3), 0.), ((512, 64, 3, 3), 0.1), ((2048, 300), 0.3), ((256, 8, 5, 5), 1.)])
def test_kaiming_normal_draws_with_that_std(shape, leak):
    torch.manual_seed(0)
    w = init.kaiming_normal_(torch.empty(shape), a=leak)
    fan_in = math.prod(shape[1:])
    close(w.std(), kaiming_std(fan_in, leak), eps=0.01 * kaiming_std(fan_in, leak))

def test_init_weights_sets_only_convolutions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(64, 256, 3), nn.Linear(10, 10), nn.Conv1d(32, 512, 5))
    lin = model[1].weight.clone()
    model.apply(partial(init_weights, leaky=0.1))
    assert torch.equal(model[1].weight, lin)
    close(model[0].weight.std(), kaiming_std(64 * 9, 0.1), eps=0.003)
    close(model[2].weight.std(), kaiming_std(32 * 5, 0.1), eps=0.005)

# GeneralRelu against its formula

@FAST
@given(leak=st.one_of(st.none(), st.floats(0, 1)), sub=st.one_of(st.none(), st.floats(-2, 2)),
       maxv=st.one_of(st.none(), st.floats(-1, 10)), scale=scales, seed=st.integers(0, 2**16))
def test_general_relu_is_its_formula(leak, sub, maxv, scale, seed):
    x = batch((50,), scale, 0., seed).requires_grad_()
    y = GeneralRelu(leak, sub, maxv)(x)
    expected = torch.where(x >= 0, x, x * (leak or 0.)) - (sub or 0.)
    if maxv is not None: expected = expected.clamp(max=maxv)
    close(y, expected, eps=1e-12)
    y.sum().backward()   # no in-place change breaks the backward pass, with or without a leak
    slope = torch.where(x > 0, torch.ones_like(x), torch.full_like(x, leak or 0.))
    if maxv is not None: slope = torch.where(expected.detach() < maxv, slope, 0.)
    close(x.grad, slope, eps=1e-12)

def test_plot_func_draws_steps_points():
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    plt.figure()
    plot_func(GeneralRelu(leak=0.1, sub=0.4), start=-2., end=3., steps=11)
    line = plt.gca().lines[0]
    close(line.get_xdata()[[0, -1]], [-2., 3.]); assert len(line.get_xdata()) == 11
    close(line.get_ydata()[[0, -1]], [-0.6, 2.6], eps=1e-6)
    plt.close('all')

# conv and get_model

def test_conv_bias_only_where_no_batchnorm_follows():
    assert conv(1, 8)[0].bias is not None and len(conv(1, 8)) == 2
    assert conv(1, 8, norm=nn.BatchNorm2d)[0].bias is None
    assert conv(1, 8, norm=partial(nn.BatchNorm2d, momentum=0.2))[0].bias is None
    assert conv(1, 8, norm=BatchNorm)[0].bias is None and conv(1, 8, norm=LayerNorm)[0].bias is not None
    assert conv(1, 8, norm=nn.BatchNorm2d, bias=True)[0].bias is not None
    assert isinstance(conv(1, 8, act=True)[1], nn.ReLU)   # the convolutions lesson's `act=True`
    assert len(conv(1, 8, act=None)) == 1 and len(conv(1, 8, act=False)) == 1

def test_get_model_shapes_and_layers():
    model = get_model(partial(GeneralRelu, leak=0.1, sub=0.4), nfs=[1, 4, 8], norm=nn.BatchNorm2d)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)   # 8, 4, 2, 1 pixels
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 10] and [c.bias is None for c in convs] == [True, True, False]
    assert sum(isinstance(m, GeneralRelu) for m in model.modules()) == 2
    assert get_model()(torch.randn(3, 1, 28, 28)).shape == (3, 10)   # five convolutions: 28 → 1 pixel

# LSUV

def relu_model():
    torch.manual_seed(0)
    return get_model(partial(GeneralRelu, leak=0.1, sub=0.4), nfs=[1, 4, 8])

def test_lsuv_sets_each_output_to_mean_0_std_1():
    model, xb = relu_model(), torch.randn(64, 1, 28, 28)
    relus = [m for m in model.modules() if isinstance(m, GeneralRelu)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for r, c in zip(relus, convs): lsuv_init(model, r, c, xb)
    outs = []
    hs = [r.register_forward_hook(lambda m, i, o: outs.append(o)) for r in relus]
    with torch.no_grad(): model(xb)
    for h in hs: h.remove()
    for o in outs: assert abs(o.mean()) <= 1e-3 and abs(o.std() - 1) <= 1e-3
    assert not any(m._forward_hooks for m in model.modules())

def test_lsuv_refuses_what_it_cannot_do():
    model = get_model(nfs=[1, 4], norm=nn.BatchNorm2d)
    c = model[0][0]
    with pytest.raises(ValueError, match='no bias'): lsuv_init(model, model[0][2], c, torch.randn(8, 1, 28, 28))
    model = relu_model()
    c, r = model[0][0], model[0][1]
    with torch.no_grad(): c.weight.zero_(); c.bias.fill_(-5.)   # every output the same: no spread to scale
    with pytest.raises(ValueError, match='std 0'): lsuv_init(model, r, c, torch.randn(8, 1, 28, 28))
    assert not any(m._forward_hooks for m in model.modules())   # the hook is gone after the error too
    model = get_model(nfs=[1, 4])   # a plain ReLU's output never has mean 0: it stops, and says so
    with pytest.raises(ValueError):
        lsuv_init(model, model[0][1], model[0][0], torch.randn(8, 1, 28, 28), max_iters=20)

# BatchTransformCB

def test_batch_transform_only_where_asked():
    x, y = torch.ones(8, 2), torch.zeros(8, dtype=torch.long)
    dls = DataLoaders(DataLoader(Dataset(x, y), 4), DataLoader(Dataset(x, y), 4))
    seen = []
    class Seen(Callback):
        order = 1
        def before_batch(self, learn): seen.append((learn.model.training, learn.batch[0][0, 0].item()))
    for on_train, on_val in [(True, True), (True, False), (False, True)]:
        seen.clear()
        cb = BatchTransformCB(lambda b: (b[0] * 3, b[1]), on_train=on_train, on_val=on_val)
        Learner(nn.Linear(2, 2), dls, lr=0.1, cbs=[TrainCB(), cb, Seen()]).fit(1)
        assert seen == [(True, 3. if on_train else 1.)] * 2 + [(False, 3. if on_val else 1.)] * 2

# memory helpers

def test_clean_tb_drops_the_last_traceback():
    import sys
    try: 1 / 0
    except ZeroDivisionError: sys.last_type, sys.last_value, sys.last_traceback = sys.exc_info()
    clean_tb()
    assert not any(hasattr(sys, n) for n in ('last_type', 'last_value', 'last_traceback'))
    clean_tb()   # nothing to clean: nothing happens

def test_clean_ipython_hist_forgets_inputs_and_outputs():
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    try:
        ip.run_cell('big = list(range(10))', store_history=True)
        ip.run_cell('big', store_history=True)
        assert ip.user_ns['_i1'] == 'big = list(range(10))' and ip.user_ns['Out'][2] == list(range(10))
        clean_mem()
        assert '_i1' not in ip.user_ns and ip.user_ns['_i'] == '' and not ip.user_ns['Out']
        assert set(ip.history_manager.input_hist_raw) == {''}
    finally: InteractiveShell.clear_instance()
    clean_ipython_hist()   # outside IPython: nothing to do
