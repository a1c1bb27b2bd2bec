"""The `minitrain-fit` command as a user runs it: a separate process, where the process is what is tested (its exit
status, its output, a real training run), and `main()` in this process (the `cli` fixture) for the refusals."""
import pytest
from conftest import make_mnist, run_cli

@pytest.mark.parametrize('args,name', [(['--epochs', '-1'], '--epochs'), (['--bs', '0'], '--bs'), (['--lr', 'inf'], '--lr'),
                                       (['--lr', '0'], '--lr'), (['--nh', '1.5'], '--nh'), (['--seed', 'x'], '--seed'),
                                       (['--plot', '/no/such/folder/h.png'], '--plot'), (['--epochs', 'three'], '--epochs'),
                                       (['--plot', '/tmp'], '--plot'), (['--plot', '/dev/full'], '--plot'), (['--plot', 'fig.txt'], '--plot'),
                                       (['--seed', '-5'], '--seed'), (['--seed', str(2**32)], '--seed'), (['--device', 'gpu'], '--device'),
                                       (['--model', 'vgg'], '--model'), (['--opt', 'lbfgs'], '--opt'), (['--sched', 'cosine'], '--sched'),
                                       (['--model', 'cnn', '--nh', '10'], '--nh'), (['--model', 'cnn', '--backward', 'manual'], '--backward'),
                                       (['--model', 'resnet', '--nh', '10'], '--nh'), (['--model', 'resnet', '--backward', 'manual'], '--backward')])
def test_bad_options_one_line(cli, args, name):
    r = cli(*args)
    assert r.returncode == 2
    assert r.stdout == '' and r.stderr.count('\n') == 1 and name in r.stderr and 'Traceback' not in r.stderr, r.stderr

@pytest.mark.parametrize('device', ['cuda', 'mps'])
def test_unavailable_device_is_one_line(cli, device, tmp_path):
    import torch
    if (device == 'cuda' and torch.cuda.is_available()) or (device == 'mps' and torch.backends.mps.is_available()): pytest.skip(f'{device} is here')
    r = cli('--device', device, '--data', str(make_mnist(tmp_path, n_train=10_020)))
    assert r.returncode == 2 and r.stdout == '' and r.stderr.count('\n') == 1, (r.stdout, r.stderr)
    assert f"argument --device: device '{device}' is not available" in r.stderr

def test_a_bad_option_in_a_process_of_its_own():
    "What the console script does with `main()`'s status: the process exits with it, and says one line."
    r = run_cli('--epochs', '-1')
    assert r.returncode == 2 and r.stdout == '' and r.stderr.count('\n') == 1 and '--epochs' in r.stderr, r.stderr

def test_missing_data_one_line(tmp_path, cli):
    (tmp_path/'file').write_text('not a folder')  # a data "folder" that is a file: nothing can be read or downloaded there
    r = cli('--data', str(tmp_path/'file'))
    assert r.returncode == 1
    assert r.stderr.startswith('minitrain-fit: error: ') and r.stderr.count('\n') == 1, r.stderr
    assert 'Traceback' not in r.stderr

def test_trains_on_small_data(tmp_path):
    "A new Python trains the MLP, and never imports PyTorch's compiler (1.5 s more for every run, as `set_seed` once did)."
    code = ("import sys; from minitrain.cli import main; s = main()\n"
            "if 'torch._dynamo' in sys.modules: print('imported torch._dynamo', file=sys.stderr)\n"
            "sys.exit(s)")
    r = run_cli('--data', str(make_mnist(tmp_path, n_train=10_200)), '--epochs', '2', '--bs', '64', '--device', 'cpu', code=code)
    assert r.returncode == 0 and r.stderr == '', r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ['epoch', 'train', 'accuracy', 'loss', 'time']
    assert [l.split()[:2] for l in lines[1:-1]] == [['0', 'train'], ['0', 'eval'], ['1', 'train'], ['1', 'eval']]
    assert lines[-1].startswith('accuracy ') and float(lines[-1].split()[1]) > 0.9  # the synthetic digits are easy
    assert abs(float(lines[-2].split()[2]) - float(lines[-1].split()[1])) <= 5e-4     # the last validation row's accuracy, to 3 places

def test_plot_says_where_before_the_last_line(cli, tmp_path):
    png = tmp_path/'run.png'
    r = cli('--data', str(make_mnist(tmp_path, n_train=10_100)), '--epochs', '1', '--plot', str(png))
    assert r.returncode == 0 and r.stderr == '', r.stderr
    assert r.stdout.splitlines()[-2] == f'saved the figure to {png}' and png.read_bytes()[:4] == b'\x89PNG'

def test_lr_find_ends_with_lr(cli, tmp_path):
    svg = tmp_path/'lr.svg'
    r = cli('--data', str(make_mnist(tmp_path, n_train=12_000)), '--lr-find', '--plot', str(svg))
    assert r.returncode == 0 and r.stderr == '', r.stderr
    lines = r.stdout.splitlines()
    assert lines[-2] == f'saved the figure to {svg}' and svg.read_text().lstrip().startswith('<?xml')
    assert lines[-1].split()[0] == 'lr' and float(lines[-1].split()[1]) > 0

@pytest.mark.parametrize('damage,words', [('label 10', 'has a label 10'), ('short labels', 'images but'),
                                          ('truncated', 'not a complete gzip file')])
def test_bad_data_files_one_line(cli, tmp_path, damage, words):
    import gzip, numpy as np
    from minitrain.data import write_idx
    folder = make_mnist(tmp_path, n_train=10_020)
    labels = folder/'mnist'/'train-labels-idx1-ubyte.gz'
    if damage == 'label 10': write_idx(labels, np.full(10_020, 10))
    elif damage == 'short labels': write_idx(labels, np.zeros(10_000))
    else: labels.write_bytes(labels.read_bytes()[:100])
    r = cli('--data', str(folder), '--epochs', '1')
    assert r.returncode == 1 and r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    assert words in r.stderr and str(labels) in r.stderr

def test_cnn_recipe_trains_on_small_data(cli, tmp_path):
    r = cli('--model', 'cnn', '--data', str(make_mnist(tmp_path, n_train=11_000)), '--epochs', '2', '--bs', '50',
                '--device', 'cpu')   # 1,000 training images: 20 steps of 1cycle
    assert r.returncode == 0 and r.stderr == '', r.stderr
    lines = r.stdout.splitlines()
    assert [l.split()[:2] for l in lines[1:-1]] == [['0', 'train'], ['0', 'eval'], ['1', 'train'], ['1', 'eval']]
    # it learns: the synthetic digits are bars two rows apart, which its 2-pixel shifts blur into their neighbours', so
    # not far in 20 steps; but past chance (0.1, and a loss of ln 10 = 2.30)
    valid_loss = float(lines[-2].split()[3])
    assert lines[-1].startswith('accuracy ') and float(lines[-1].split()[1]) > 0.2 and valid_loss < 2.0, lines

def test_resnet_trains_on_small_data(cli, tmp_path):
    "The ResNet lesson's model and recipe: 1,000 training images, 20 steps of AdamW and 1cycle."
    r = cli('--model', 'resnet', '--data', str(make_mnist(tmp_path, n_train=11_000)), '--epochs', '1', '--bs', '50', '--device', 'cpu')
    assert r.returncode == 0 and r.stderr == '', r.stderr
    lines = r.stdout.splitlines()
    assert [l.split()[:2] for l in lines[1:-1]] == [['0', 'train'], ['0', 'eval']]
    assert lines[-1].startswith('accuracy ') and float(lines[-1].split()[1]) > 0.9, lines   # it learns the synthetic bars; 1.0 at seeds 1, 2 and 3

def test_mlp_with_adam_and_onecycle(cli, tmp_path):
    data = str(make_mnist(tmp_path, n_train=10_200))
    r = cli('--data', data, '--epochs', '2', '--opt', 'adam', '--sched', 'onecycle', '--lr', '0.01', '--device', 'cpu')
    assert r.returncode == 0 and r.stderr == '', r.stderr
    assert float(r.stdout.splitlines()[-1].split()[1]) > 0.9
    r = cli('--data', data, '--epochs', '3', '--opt', 'momentum', '--lr', '0.05', '--device', 'cpu')
    assert r.returncode == 0 and float(r.stdout.splitlines()[-1].split()[1]) > 0.9, (r.stdout, r.stderr)

def test_fit_model_uses_the_options_optimizer_and_schedule(monkeypatch, tmp_path):
    "The MLP's plain SGD keeps the training lesson's Optimizer; other choices are the exported ones, with 1cycle as asked."
    from minitrain import cli, learner
    from minitrain.training import Optimizer
    from minitrain.sgd import SGD, Adam, BatchSchedCB
    seen = []
    real_fit = learner.Learner.fit
    def spy(self, *a, **k):
        seen.append((self.opt_func, [type(c).__name__ for c in self.cbs]))
        return real_fit(self, *a, **k)
    monkeypatch.setattr(learner.Learner, 'fit', spy)
    data = make_mnist(tmp_path, n_train=10_020)
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()):
        cli.fit_model('mlp', epochs=1, data=data, device='cpu')
        cli.fit_model('mlp', epochs=1, data=data, device='cpu', opt='momentum', sched='onecycle', lr=0.05)
        cli.fit_model('cnn', epochs=1, data=data, device='cpu', bs=1024)
    assert seen[0][0] is Optimizer and 'BatchSchedCB' not in seen[0][1]
    assert seen[1][0].func is SGD and seen[1][0].keywords == {'mom': 0.9, 'wd': 0.} and 'BatchSchedCB' in seen[1][1]
    assert seen[2][0].func is Adam and seen[2][0].keywords == {'wd': 0.01}
    assert {'BatchSchedCB', 'BatchTransformCB'} <= set(seen[2][1])

def test_quick_exit_is_registered_only_when_main_runs_as_the_command(monkeypatch):
    import atexit, sys
    from minitrain.cli import main, quick_exit
    registered = []
    monkeypatch.setattr(atexit, 'register', registered.append)
    assert main(['--bs', '0']) == 2 and registered == []   # called from Python: the collector is left alone
    monkeypatch.setattr(sys, 'argv', ['minitrain-fit', '--bs', '0'])
    assert main() == 2 and registered == [quick_exit]

QUICK_EXIT = '''
import atexit, gc, os, sys
from pathlib import Path
from minitrain.cli import main
atexit.register(lambda: print('frozen', gc.get_freeze_count() > 100_000))   # registered before main's: runs after it
gc.disable()   # so that only a sweep at exit can find the cycle below
status = main()
class Note:
    def __del__(self): Path(os.environ['NOTE']).write_text('finalized')
note = Note(); note.me = note; del note   # garbage in a cycle
sys.exit(status)
'''

def test_the_command_finalizes_its_garbage_and_freezes_the_rest_at_exit(tmp_path):
    import os, subprocess, sys
    marker = tmp_path/'note'
    r = subprocess.run([sys.executable, '-c', QUICK_EXIT, '--bs', '0'], capture_output=True, text=True, timeout=60,
                       env={**os.environ, 'NOTE': str(marker)})
    assert r.returncode == 2 and '--bs' in r.stderr and r.stdout == 'frozen True\n', (r.stdout, r.stderr)
    assert marker.read_text() == 'finalized'
