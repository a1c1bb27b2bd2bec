"The `minitrain-fit` command as a user runs it: a separate process."
import pytest
from conftest import make_mnist, run_cli

@pytest.mark.parametrize('args,name', [(['--epochs', '-1'], '--epochs'), (['--bs', '0'], '--bs'), (['--lr', 'inf'], '--lr'),
                                       (['--lr', '0'], '--lr'), (['--nh', '1.5'], '--nh'), (['--seed', 'x'], '--seed'),
                                       (['--plot', '/no/such/folder/h.png'], '--plot'), (['--epochs', 'three'], '--epochs')])
def test_bad_options_one_line(args, name):
    r = run_cli(*args)
    assert r.returncode == 2
    assert r.stderr.count('\n') == 1 and name in r.stderr and 'Traceback' not in r.stderr

def test_missing_data_one_line(tmp_path):
    (tmp_path/'file').write_text('not a folder')  # a data "folder" that is a file: nothing can be read or downloaded there
    r = run_cli('--data', str(tmp_path/'file'))
    assert r.returncode == 1
    assert r.stderr.startswith('minitrain-fit: error: ') and r.stderr.count('\n') == 1, r.stderr
    assert 'Traceback' not in r.stderr

def test_trains_on_small_data(tmp_path):
    r = run_cli('--data', str(make_mnist(tmp_path, n_train=10_200)), '--epochs', '2', '--bs', '64')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [l.split()[0] for l in lines] == ['epoch', 'epoch', 'accuracy']
    assert float(lines[-1].split()[1]) > 0.9  # the synthetic digits are easy

@pytest.mark.parametrize('damage,words', [('label 10', 'has a label 10'), ('short labels', 'images but'),
                                          ('truncated', 'not a complete gzip file')])
def test_bad_data_files_one_line(tmp_path, damage, words):
    import gzip, numpy as np
    from minitrain.data import write_idx
    folder = make_mnist(tmp_path, n_train=10_020)
    labels = folder/'mnist'/'train-labels-idx1-ubyte.gz'
    if damage == 'label 10': write_idx(labels, np.full(10_020, 10))
    elif damage == 'short labels': write_idx(labels, np.zeros(10_000))
    else: labels.write_bytes(labels.read_bytes()[:100])
    r = run_cli('--data', str(folder), '--epochs', '1')
    assert r.returncode == 1 and r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    assert words in r.stderr and str(labels) in r.stderr
