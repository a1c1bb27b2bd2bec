"""Property-based checks of the derived functions against PyTorch's own, on random shapes and magnitudes:
ordinary values, very large ones (up to ±1e4, where a naive exp overflows), and -inf entries."""
import numpy as np, torch, torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays, array_shapes
from minitrain.training import logsumexp, log_softmax, nll, cross_entropy

settings.register_profile('minitrain', deadline=None, max_examples=150)
settings.load_profile('minitrain')

@st.composite
def scores(draw, min_dims=1, max_dims=3, neg_inf=True):
    "A float32 tensor of scores in [-1e4, 1e4] at a random scale, with some entries -inf when `neg_inf`."
    shape = draw(array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=9))
    scale = draw(st.sampled_from([1e-3, 1., 30., 100., 1e4]))
    x = draw(arrays(np.float32, shape, elements=st.floats(-1, 1, width=32))) * np.float32(scale)
    if neg_inf: x[draw(arrays(np.bool_, shape)) & draw(arrays(np.bool_, shape))] = -np.inf  # about a quarter of the entries
    return torch.from_numpy(x)

def close(ours, theirs, x):
    "Equal within float32 rounding at the inputs' magnitude; infinities and nans must match exactly."
    finite = x[torch.isfinite(x)]
    scale = float(finite.abs().max()) if len(finite) else 0.
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 + 3e-7*scale, equal_nan=True)

@given(scores())
def test_logsumexp(x): close(logsumexp(x), torch.logsumexp(x, -1), x)

@given(scores())
def test_log_softmax(x): close(log_softmax(x), F.log_softmax(x, -1), x)

@st.composite
def scores_and_targets(draw, neg_inf=True):
    x = draw(scores(min_dims=2, max_dims=2, neg_inf=neg_inf))
    t = draw(arrays(np.int64, (x.shape[0],), elements=st.integers(0, x.shape[1] - 1)))
    return x, torch.from_numpy(t)

@given(scores_and_targets())
def test_nll(xt):
    x, t = xt
    lp = F.log_softmax(x, -1)
    close(nll(lp, t), F.nll_loss(lp, t), x)

@given(scores_and_targets())
def test_cross_entropy(xt):
    x, t = xt
    close(cross_entropy(x, t), F.cross_entropy(x, t), x)

@given(scores(neg_inf=False))
def test_finite_inputs_give_finite_results(x):
    "Without -inf entries, nothing overflows, however large the scores."
    assert torch.isfinite(logsumexp(x)).all() and torch.isfinite(log_softmax(x)).all()

def test_close_can_fail():
    "The comparison above is not vacuous: an error of one part in a thousand is caught."
    x = torch.tensor([1., 2., 3.])
    try: close(log_softmax(x) * 1.001, F.log_softmax(x, -1), x)
    except AssertionError: return
    raise AssertionError('close() accepted a wrong result')
