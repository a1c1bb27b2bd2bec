"minitrain.resnet: the course's ResBlock, its ResNet, and Learner.summary outside a notebook."
import contextlib, io
import pytest, torch
from torch import nn
import torch.nn.functional as F
from minitrain.datasets import DataLoaders
from minitrain.training import Dataset, DataLoader
from minitrain.learner import TrainLearner
from minitrain.resnet import ResBlock, act_gr, get_resnet, mflops   # importing it patches Learner.summary

@pytest.mark.parametrize('ni,nf,stride,side', [(8, 8, 1, 7), (8, 16, 1, 7), (8, 16, 2, 7), (8, 8, 2, 8), (3, 5, 2, 1)])
def test_resblock_paths_and_shapes(ni, nf, stride, side):
    blk = ResBlock(ni, nf, stride=stride, norm=nn.BatchNorm2d)
    assert isinstance(blk.idconv, nn.Identity) == (ni == nf) and isinstance(blk.pool, nn.Identity) == (stride == 1)
    if ni != nf: assert blk.idconv[0].kernel_size == (1, 1) and blk.idconv[0].stride == (1, 1)
    if stride == 2: assert blk.pool.kernel_size == 2 and blk.pool.ceil_mode   # 7 pixels pool to 4, as the conv's
    assert [c[0].stride for c in blk.convs] == [(1, 1), (stride, stride)] and len(blk.convs[1]) == 2   # no act after the 2nd
    x = torch.randn(2, ni, side, side)
    out = blk.eval()(x)
    want = blk.act(blk.convs(x) + blk.idconv(blk.pool(x)))
    assert out.shape == (2, nf, -(-side // stride), -(-side // stride)) and torch.equal(out, want)

def test_the_resnet_has_the_course_shapes_and_parameters():
    model = get_resnet(act_gr)
    assert sum(p.numel() for p in model.parameters()) == 1_227_900   # the course's 1,228,908 less 1,008 biases
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)

def test_mflops_counts_a_conv_weight_once_per_output_pixel():
    conv = nn.Conv2d(4, 6, 3, bias=False)
    assert mflops(conv, torch.zeros(1, 6, 5, 7)) == 4 * 6 * 9 * 35 / 1e6
    assert mflops(nn.Linear(3, 2), torch.zeros(1, 2)) == 8 / 1e6 and mflops(nn.Flatten(), torch.zeros(5)) == 0

def test_summary_prints_its_table_outside_a_notebook_and_changes_nothing():
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    dls = DataLoaders(DataLoader(Dataset(x, y), 16), DataLoader(Dataset(x, y), 32))
    model = get_resnet(act_gr).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learn = TrainLearner(model, dls, F.cross_entropy)
    learn.history = ['a fit before']
    with contextlib.redirect_stdout(io.StringIO()) as out: res = learn.summary()
    lines = out.getvalue().splitlines()
    assert res is None and lines[0].startswith('Tot params: 1227900; MFLOPS: ')
    total, rows = float(lines[0].split()[-1]), [float(l.split('|')[5]) for l in lines[3:]]
    assert abs(total - sum(rows)) <= 0.05 * len(rows) and total > 1   # the rows, each rounded to 0.1, add up to it
    assert lines[1:3] == ['|Module|Input|Output|Num params|MFLOPS|', '|--|--|--|--|--|'] and len(lines) == 3 + 9
    assert lines[3].startswith('|ResBlock|(32, 1, 28, 28)|(32, 8, 28, 28)|')   # a validation batch: 2 x 16
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and model.training   # no step; no running stats moved
    assert learn.history == ['a fit before']
