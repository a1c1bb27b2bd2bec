"""minitrain.accel: AccelerateCB on this CPU, each setting of mixed precision in a process of its own (accelerate keeps one
state per process), and a module that imports without accelerate."""
import subprocess, sys
import pytest

pytest.importorskip('accelerate')

def run(code):
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return r.stdout

SETUP = '''
import torch, torch.nn.functional as F
from torch import nn
from minitrain.datasets import DataLoaders
from minitrain.training import Dataset, DataLoader, set_seed
from minitrain.learner import Learner, TrainCB, MetricsCB
from minitrain.accel import AccelerateCB
x = torch.randn(512, 10); y = (x[:, :3].sum(1) > 0).long()
def dls(): return DataLoaders(DataLoader(Dataset(x, y), 32, shuffle=True, seed=0), DataLoader(Dataset(x, y), 64))
def model(): set_seed(0); return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 2))
'''

def test_bf16_runs_the_layers_in_bfloat16_and_trains():
    out = run(SETUP + '''
m = model(); seen = []
m[0].register_forward_hook(lambda mod, i, o: seen.append(o.dtype))
learn = Learner(m, dls(), F.cross_entropy, lr=0.1, cbs=[AccelerateCB(mixed_precision='bf16'), MetricsCB()])
learn._log = None
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()): learn.fit(3)
rows = [r for r in learn.history if not r['train']]
print(set(seen), rows[0]['loss'] > rows[-1]['loss'], m[0].weight.dtype)
''')
    assert out.strip() == '{torch.bfloat16} True torch.float32', out   # the layers in bf16, the weights kept in float32

def test_no_mixed_precision_is_plain_training_bit_for_bit():
    out = run(SETUP + '''
m1, m2 = model(), model()
Learner(m1, dls(), F.cross_entropy, lr=0.1, cbs=TrainCB()).fit(2)
Learner(m2, dls(), F.cross_entropy, lr=0.1, cbs=AccelerateCB(mixed_precision='no')).fit(2)
print(all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters())))
''')
    assert out.strip() == 'True'

def test_the_module_imports_without_accelerate_and_says_how_to_install_it():
    out = run('''
import sys; sys.modules['accelerate'] = None
from minitrain.accel import AccelerateCB, MixedPrecision
try: AccelerateCB()
except ImportError as e: print(e)
''')
    assert out.strip() == 'AccelerateCB needs Hugging Face accelerate: pip install "minitrain[hf]"', out
