"Hooks and activation statistics: hooks never outlive their fit or their `with` block; statistics stay until the next fit."
import pytest, torch
import torch.nn.functional as F
from torch import nn
from minitrain.training import Dataset, DataLoader, set_seed
from minitrain.learner import Learner, DataLoaders, TrainCB, Callback
from minitrain.activations import *

def dls(n=64, bs=16):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)
    return DataLoaders(DataLoader(Dataset(x, y), bs), DataLoader(Dataset(x, y), bs))

def cnn(): return nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 3, 3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
def hooked(model): return [m for m in model.modules() if m._forward_hooks]
def is_conv(m): return isinstance(m, nn.Conv2d)

def test_star_import_is_the_course_names():
    ns = {}
    exec('from minitrain.activations import *', ns)
    assert sorted(k for k in ns if k != '__builtins__') == sorted(
        ['set_seed', 'Hook', 'Hooks', 'HooksCallback', 'append_stats', 'get_hist', 'get_min', 'ActivationStats'])

def test_hooks_context_leaves_no_hook_also_after_an_error():
    model = cnn()
    with pytest.raises(ZeroDivisionError):
        with Hooks(model, append_stats) as hs:
            assert len(hooked(model)) == len(list(model))
            1 / 0
    assert hooked(model) == []
    with Hooks(model, append_stats) as hs:
        del hs[0]
        assert len(hs) == len(list(model)) - 1 and model[0]._forward_hooks == {}

def test_stats_per_batch_and_histogram_shapes():
    model = cnn()
    with Hooks([model[0]], append_stats) as hs:
        for _ in range(3): model(torch.randn(5, 1, 8, 8))
    h = hs[0]
    assert len(h.stats[0]) == 3 and get_hist(h).shape == (40, 3) and get_min(h).shape == (3,)
    counts = torch.stack(h.stats[2])
    assert torch.all(counts.sum(1) <= 5 * 4 * 4 * 4)   # histc drops values past 10
    torch.testing.assert_close(get_min(h), counts[:, 0] / counts.sum(1))

def test_callback_hooks_the_filtered_modules_for_the_fit_only_and_keeps_the_stats():
    astats = ActivationStats(is_conv)
    model = cnn()
    learn = Learner(model, dls(), F.cross_entropy, 0.1, cbs=[TrainCB(), astats])
    learn.fit(2)
    assert hooked(model) == [] and len(astats) == 2
    assert all(len(h.stats[0]) == 2 * len(learn.dls.train) for h in astats)   # training batches only, by default
    learn.fit(1)
    assert all(len(h.stats[0]) == len(learn.dls.train) for h in astats)       # a new fit, new hooks

def test_hooks_are_removed_when_the_fit_fails():
    class Boom(Callback):
        def after_batch(self, learn):
            if learn.iter == 1: raise RuntimeError('boom')
    model = cnn()
    hc = HooksCallback(append_stats, mod_filter=is_conv)
    with pytest.raises(RuntimeError, match='boom'):
        Learner(model, dls(), F.cross_entropy, 0.1, cbs=[TrainCB(), hc, Boom()]).fit(1)
    assert hooked(model) == [] and len(hc) == 2 and len(hc.hooks[0].stats[0]) == 2

def test_on_valid_and_explicit_modules():
    model = cnn()
    hc = HooksCallback(append_stats, on_train=False, on_valid=True, mods=[model[2]])
    learn = Learner(model, dls(), F.cross_entropy, 0.1, cbs=[TrainCB(), hc])
    learn.fit(1)
    assert len(hc) == 1 and len(hc.hooks[0].stats[0]) == len(learn.dls.valid)

def test_plots_draw_one_panel_per_hook():
    import matplotlib.pyplot as plt
    astats = ActivationStats(is_conv)
    Learner(cnn(), dls(), F.cross_entropy, 0.1, cbs=[TrainCB(), astats]).fit(1)
    for draw in (astats.color_dim, astats.dead_chart, astats.plot_stats):
        draw()
        assert sum(ax.has_data() for ax in plt.gcf().axes) == 2   # two convolutions; two panels of plot_stats
        plt.close('all')

def test_set_seed_repeats_and_takes_deterministic():
    set_seed(3, deterministic=False); a = torch.rand(3)
    set_seed(3); b = torch.rand(3)
    assert torch.equal(a, b) and not torch.are_deterministic_algorithms_enabled()
    try:
        set_seed(3, deterministic=True); assert torch.are_deterministic_algorithms_enabled()
        set_seed(3); assert not torch.are_deterministic_algorithms_enabled()   # and back
    finally: torch.use_deterministic_algorithms(False)

def test_append_stats_are_the_courses_and_end_each_epoch_on_the_cpu():
    "The statistics are computed where the output is; the callback moves them to the CPU once an epoch."
    outs = []
    astats = ActivationStats(is_conv)
    model = cnn()
    h = model[0].register_forward_hook(lambda m, i, o: outs.append(o.detach().clone()))
    Learner(model, dls(), lr=0.1, cbs=[TrainCB(), astats]).fit(2)
    h.remove()
    n = len(dls().train)
    first = astats.hooks[0]
    assert len(first.stats[0]) == 2 * n
    for i, o in enumerate(o for j, o in enumerate(outs) if (j // n) % 2 == 0):   # training batches: epochs alternate
        course = o.detach().cpu()
        assert torch.equal(first.stats[0][i], course.mean()) and torch.equal(first.stats[1][i], course.std())
        assert torch.equal(first.stats[2][i], course.abs().histc(40, 0, 10))

def test_hooks_callback_moves_the_stats_with_to_cpu_at_each_epochs_end():
    "The move is `to_cpu` (float16 becomes float32 on the way): seen after each epoch, not before."
    def half_stats(hook, mod, inp, outp):
        if not hasattr(hook, 'stats'): hook.stats = ([],)
        hook.stats[0].append(outp.detach().mean().half())
    seen = []
    class Look(Callback):
        order = 1   # after HooksCallback's after_epoch
        def after_batch(self, learn): seen.append(('batch', hc.hooks[0].stats[0][-1].dtype))
        def after_epoch(self, learn): seen.append(('epoch', hc.hooks[0].stats[0][-1].dtype))
    hc = HooksCallback(half_stats, is_conv)
    Learner(cnn(), dls(), lr=0.1, cbs=[TrainCB(), hc, Look()]).fit(1, valid=False)
    assert seen == [('batch', torch.float16)] * len(dls().train) + [('epoch', torch.float32)]
