"""The second round of faults and bad inputs: hostile pickles, cache files that would hang or exhaust the loader, errors
that came too late or said the wrong thing, interrupts, sizes that cannot fit. Every file is made here, in a temporary folder."""
import gzip, os, pickle, signal, struct, subprocess, sys, tempfile, time, zlib
from pathlib import Path
import numpy as np, pytest, torch
import torch.nn.functional as F
from torch import nn
from conftest import AS_FROM_A_TERMINAL, make_mnist
from fuzz_pickle import SEGFAULT, UNINITIALISED
from minitrain.data import load_mnist, load_pickle, read_idx, MNISTFileError
from minitrain.training import Dataset, DataLoader
from minitrain.learner import Learner, DataLoaders, TrainCB

def one_line(r, code, *words):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    for w in words: assert w in r.stderr, r.stderr

# --- pickles ---

@pytest.mark.parametrize('payload,words', [(SEGFAULT, 'dtype of Python objects'), (UNINITIALISED, 'refusing to call numpy.ndarray')])
def test_hostile_array_pickles_are_refused_through_the_cli(cli, tmp_path, payload, words):
    with gzip.open(tmp_path/'mnist.pkl.gz', 'wb') as f: f.write(payload)
    assert len(gzip.compress(payload)) < 400   # the 161- and 393-byte files of the report, or their like
    r = cli('--data', str(tmp_path))
    one_line(r, 1, str(tmp_path/'mnist.pkl.gz'), words)   # not a segfault (status 139)

def test_an_array_of_objects_by_reconstruct_and_state_is_refused(tmp_path):
    a = np.array([1, 'x'], dtype=object)
    with gzip.open(tmp_path/'mnist.pkl.gz', 'wb') as f: pickle.dump(((a, a), (a, a), (a, a)), f, protocol=2)
    with pytest.raises(MNISTFileError, match='Python objects|array state'): load_pickle(tmp_path/'mnist.pkl.gz')

def test_a_pickle_may_not_ask_for_more_than_mnist_holds(tmp_path):
    # BINBYTES8 of 2**40 bytes: refused when asked for, before anything is read or allocated
    payload = b'\x80\x04\x8e' + struct.pack('<Q', 2**40)
    with gzip.open(tmp_path/'mnist.pkl.gz', 'wb') as f: f.write(payload)
    with pytest.raises(MNISTFileError, match='more than an MNIST pickle holds'): load_pickle(tmp_path/'mnist.pkl.gz')

def test_opcodes_arrays_do_not_need_are_refused(tmp_path):
    with gzip.open(tmp_path/'mnist.pkl.gz', 'wb') as f: pickle.dump([1, 2, {'a': 3}], f, protocol=2)
    with pytest.raises(MNISTFileError, match='opcode EMPTY_LIST'): load_pickle(tmp_path/'mnist.pkl.gz')

def test_pickles_of_every_protocol_numpy_uses_still_load(tmp_path):
    splits = tuple((np.random.rand(n, 784).astype(np.float32), np.arange(n)) for n in (4, 2, 2))
    for proto in (2, 3, 4):
        with gzip.open(tmp_path/'mnist.pkl.gz', 'wb') as f: pickle.dump(splits, f, protocol=proto)
        (x, y), _, _ = load_pickle(tmp_path/'mnist.pkl.gz')
        assert torch.equal(x, torch.from_numpy(splits[0][0])) and y.dtype == torch.int64

def test_fuzzed_pickles_in_a_subprocess():
    "Random pickles from the allowed opcodes and callables (tests/fuzz_pickle.py): none crash, run code or over-allocate."
    n = os.environ.get('MINITRAIN_FUZZ_EXAMPLES', '150')
    r = subprocess.run([sys.executable, str(Path(__file__).parent/'fuzz_pickle.py'), n], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f"exit {r.returncode} (a negative status is a signal: -11 a segfault)\n{r.stdout}\n{r.stderr[-3000:]}"
    assert 'none crashed' in r.stdout

# --- cache files that would hang or exhaust the loader ---

def test_a_fifo_in_the_cache_does_not_hang(tmp_path):
    os.mkfifo(tmp_path/'mnist.pkl.gz')
    t = time.perf_counter()
    with pytest.raises(MNISTFileError, match='not a regular file'): load_mnist(tmp_path)
    assert time.perf_counter() - t < 5

@pytest.mark.parametrize('name', ['mnist.pkl.gz', 'mnist/train-images-idx3-ubyte.gz'])
def test_a_link_to_dev_zero_is_refused(tmp_path, name):
    (tmp_path/'mnist').mkdir()
    if name.startswith('mnist/'):
        make_mnist(tmp_path)
        (tmp_path/name).unlink()
    os.symlink('/dev/zero', tmp_path/name)
    with pytest.raises(MNISTFileError, match='not a regular file'): load_mnist(tmp_path)

def test_a_gzip_bomb_is_refused_before_it_is_read(tmp_path):
    "A header claiming 1.5 M images over 64 MB of zeros in 64 kB: refused by its header, having read almost nothing."
    import tracemalloc
    fn = tmp_path/'train-images-idx3-ubyte.gz'
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(fn, 'wb') as f:
        f.write(co.compress((0x803).to_bytes(4, 'big') + (1_500_000).to_bytes(4, 'big') + (28).to_bytes(4, 'big') * 2))
        for _ in range(64): f.write(co.compress(bytes(1 << 20)))
        f.write(co.flush())
    assert fn.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(MNISTFileError, match=r'says it holds sizes \[1500000, 28, 28\].*at most \[60000, 28, 28\]'):
            read_idx(fn, 3, most=(60000, 28, 28))
        peak = tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()
    assert peak < 2**20   # under a megabyte: the 64 MB were never read, let alone the 1.2 GB the header claims

def test_idx_that_holds_more_than_its_header_says(tmp_path):
    make_mnist(tmp_path)
    fn = tmp_path/'mnist'/'t10k-labels-idx1-ubyte.gz'
    fn.write_bytes(gzip.compress(gzip.decompress(fn.read_bytes()) + b'\x00' * 10))
    with pytest.raises(MNISTFileError, match='but holds more than'): read_idx(fn, 1, most=(10_000,))

# --- errors that came too late ---

def test_plot_into_a_folder_that_cannot_be_written_is_refused_before_training(cli, tmp_path):
    data = make_mnist(tmp_path/'d', n_train=10_020)   # epochs of 1 training and 5 validation batches
    t = time.perf_counter()
    r = cli('--data', str(data), '--epochs', '50', '--plot', '/proc/run.png')   # /proc takes no new files, even from root
    one_line(r, 2, 'argument --plot: cannot write /proc/run.png')
    assert r.stdout == '' and time.perf_counter() - t < 30

def test_save_that_cannot_be_written_is_refused_before_training(cli, tmp_path):
    data = make_mnist(tmp_path/'d', n_train=10_020)
    for target, words in [('/proc/model.pt', 'argument --save: cannot write /proc/model.pt'),
                          (str(tmp_path), 'is a folder'), (str(tmp_path/'no'/'m.pt'), 'no folder')]:
        t = time.perf_counter()
        r = cli('--data', str(data), '--epochs', '50', '--save', target)
        one_line(r, 2, words)
        assert r.stdout == '' and time.perf_counter() - t < 30

def test_save_writes_the_model_that_scored_and_leaves_nothing_else(cli, tmp_path):
    import torch
    from minitrain.training import MLP, accuracy
    from minitrain.data import load_mnist
    data = make_mnist(tmp_path/'d', n_train=10_020)
    out = tmp_path/'out'; out.mkdir()
    r = cli('--data', str(data), '--epochs', '2', '--save', str(out/'m.pt'))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-2] == f"saved the model to {out/'m.pt'}" and [p.name for p in out.iterdir()] == ['m.pt']
    model = MLP(784, 50, 10)
    model.load_state_dict(torch.load(out/'m.pt', weights_only=True))
    _, (xv, yv), _ = load_mnist(data)
    assert abs(float(accuracy(model(xv), yv)) - float(r.stdout.splitlines()[-1].split()[1])) < 1e-4

def test_sigterm_with_save_leaves_no_model_file(tmp_path):
    data = make_mnist(tmp_path/'d', n_train=10_020)
    pt = tmp_path/'out'/'m.pt'; pt.parent.mkdir()
    code = "import sys; from minitrain.cli import main; sys.exit(main())"
    p = subprocess.Popen([sys.executable, '-c', code, '--data', str(data), '--epochs', '1000000', '--bs', '1000', '--save', str(pt)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith('epoch')
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally: p.kill()
    assert p.returncode == 143 and list(pt.parent.iterdir()) == []

@pytest.mark.parametrize('value', ['garbage', 'nan', 'inf', '0', '-5', ''])
def test_bad_dist_timeout_names_the_variable(cli, tmp_path, value):
    env = {'RANK': '0', 'WORLD_SIZE': '1', 'LOCAL_RANK': '0', 'MINITRAIN_DIST_TIMEOUT': value}
    r = cli('--data', str(make_mnist(tmp_path, n_train=10_020)), env=env)
    one_line(r, 2, 'MINITRAIN_DIST_TIMEOUT must be a number of seconds greater than 0', repr(value))
    assert r.stdout == ''

# --- errors that said the wrong thing ---

def test_offline_first_run_leads_with_what_to_do_and_names_the_option(cli, tmp_path):
    r = cli('--data', str(tmp_path/'new'/'deeper'))
    one_line(r, 1, '--data', 'MINITRAIN_DATA', 'http://127.0.0.1:9/a/train-images-idx3-ubyte.gz')
    assert r.stderr.startswith(f"minitrain-fit: error: MNIST is not in {tmp_path/'new'/'deeper'} and could not be downloaded: put its")
    assert not (tmp_path/'new').exists()   # no folder the failed run made is left behind

def test_empty_data_option_is_refused(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli('--data', '')
    one_line(r, 2, 'argument --data: the folder name is empty')
    assert list(tmp_path.iterdir()) == []   # and no ./mnist/

def run_as_nobody(code):
    """Run Python `code` as the user nobody; None where that cannot be done here: only root can, and only where nobody
    can run this Python and import minitrain from where they are installed (a virtual environment in root's home is
    out of nobody's reach), which a control run checks first."""
    if os.geteuid() != 0 or not Path('/usr/bin/setpriv').exists(): return None
    def as_nobody(code):
        return subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', sys.executable, '-c', code],
                              capture_output=True, text=True, timeout=60)
    control = as_nobody('import minitrain.data')
    if control.returncode != 0:
        pytest.skip(f"the user nobody cannot import minitrain from {sys.executable}: "
                    f"{(control.stderr.strip().splitlines() or ['exit ' + str(control.returncode)])[-1]}")
    return as_nobody(code)

def test_a_cache_file_another_user_cannot_read_is_a_permission_error():
    d = Path(tempfile.mkdtemp()); d.chmod(0o755)
    make_mnist(d); (d/'mnist').chmod(0o755)
    for p in (d/'mnist').iterdir(): p.chmod(0o644)
    (d/'mnist'/'train-images-idx3-ubyte.gz').chmod(0o600)
    r = run_as_nobody(f"from minitrain.data import load_mnist; load_mnist({str(d)!r})")
    if r is None: pytest.skip('needs root and setpriv to run as another user')
    assert 'PermissionError' in r.stderr and 'permission denied' in r.stderr and 'Delete' not in r.stderr, r.stderr

# --- interrupts and sizes ---

def interrupt(tmp_path, sig):
    data = make_mnist(tmp_path/'d', n_train=10_020)   # epochs of 1 training and 5 validation batches
    png = tmp_path/'out'/'run.png'; png.parent.mkdir()
    # SIGUSR1 makes the run print its threads' stacks: what it was doing, should it not stop
    code = AS_FROM_A_TERMINAL + "import faulthandler, sys; faulthandler.register(signal.SIGUSR1); from minitrain.cli import main; sys.exit(main())"
    p = subprocess.Popen([sys.executable, '-c', code, '--data', str(data), '--epochs', '1000000', '--bs', '1000', '--plot', str(png)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith('epoch')   # training has started: the first row is out
        masks = signal_lines(p.pid)
        p.send_signal(sig)
        try: out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:   # still training: say where, and how it treated the signal before
            p.send_signal(signal.SIGUSR1); time.sleep(1); p.kill()
            out, err = p.communicate(timeout=30)
            pytest.fail(f"{sig.name} did not stop the run in 60 s; its signal masks before: {masks}; its stacks:\n{err[-4000:]}")
    finally: p.kill()
    return p.returncode, err, sorted(x.name for x in png.parent.iterdir())

def signal_lines(pid):
    "Which signals process `pid` blocks, ignores and catches, as /proc shows them (hexadecimal masks)."
    try: return ' '.join(l.split()[0] + l.split()[1] for l in open(f'/proc/{pid}/status') if l.startswith(('SigBlk', 'SigIgn', 'SigCgt')))
    except OSError: return 'unknown'

def test_ctrl_c_is_one_line_and_status_130(tmp_path):
    code, err, left = interrupt(tmp_path, signal.SIGINT)
    assert code == 130 and err == 'minitrain-fit: interrupted\n' and left == [], (code, err, left)

@pytest.mark.parametrize('ignored', [False, True])
def test_a_signal_ignored_at_the_start_stays_ignored(cli, mnist_dir, tmp_path, monkeypatch, ignored):
    "Run as a script's background job, which the shell starts with Ctrl-C ignored, `--checkpoint` does not take SIGINT over."
    import minitrain.cli as mc
    seen = {}
    def fit_model(*args):   # in place of training: note the handlers the run would meet
        seen.update({s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}); return 0.5
    monkeypatch.setattr(mc, 'fit_model', fit_model)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN if ignored else signal.default_int_handler)
    try: r = cli('--data', str(mnist_dir), '--checkpoint', str(tmp_path/'D'))
    finally: after = signal.signal(signal.SIGINT, before)
    assert r.returncode == 0 and r.stdout == 'accuracy 0.5000\n', (r.stdout, r.stderr)
    assert (seen[signal.SIGINT] is signal.SIG_IGN) == ignored and seen[signal.SIGTERM].__name__ == 'handler', seen
    assert after is (signal.SIG_IGN if ignored else signal.default_int_handler)   # and as it was, after

def test_sigterm_is_one_line_and_status_143_and_leaves_no_file(tmp_path):
    code, err, left = interrupt(tmp_path, signal.SIGTERM)
    assert code == 143 and err == 'minitrain-fit: terminated by SIGTERM\n' and left == [], (code, err, left)

@pytest.mark.parametrize('args,words', [(['--nh', '1000000000'], 'argument --nh: 1000000000 hidden units'),
                                        (['--bs', '99999999999999999999999'], 'argument --bs: must be between 1 and'),
                                        (['--epochs', str(2**40)], 'argument --epochs')])
def test_sizes_that_cannot_fit_are_one_line(cli, tmp_path, args, words):
    r = cli('--data', str(make_mnist(tmp_path, n_train=10_020)), *args)
    one_line(r, 2, words)

# --- labels and devices, on the first real batch ---

def tiny_dls(y):
    x = torch.randn(len(y), 5)
    return DataLoaders(DataLoader(Dataset(x, y), 8), DataLoader(Dataset(x, y), 8))

@pytest.mark.parametrize('y,words', [(torch.randint(0, 3, (32,), dtype=torch.int32), 'dtype torch.int32'),
                                     (torch.randint(0, 3, (32,), dtype=torch.int16), 'dtype torch.int16'),
                                     (torch.randint(0, 2, (32,)).bool(), 'dtype torch.bool'),
                                     (torch.randint(0, 3, (32, 1)), 'shape (8, 1)')])
def test_labels_of_the_wrong_kind_name_it_before_any_step(y, words):
    model = nn.Linear(5, 3)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=words.replace('(', r'\(').replace(')', r'\)')) as e:
        Learner(model, tiny_dls(y), F.cross_entropy, 0.1, cbs=TrainCB()).fit(1)
    assert 'int64' in str(e.value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))

def test_a_model_on_another_device_says_where_each_is():
    with pytest.raises(ValueError, match=r'the model is on meta but the batch is on cpu: add DeviceCB\(\)'):
        Learner(nn.Linear(5, 3).to('meta'), tiny_dls(torch.randint(0, 3, (32,))), F.cross_entropy, 0.1, cbs=TrainCB()).fit(1)

FORKED_POOL = '''
import multiprocessing, sys, torch
if sys.argv[1] == 'minitrain': import minitrain.training
torch.set_num_threads(2)
x = torch.randn(20000, 784)
(x @ x[:784].T).sum()   # the parent's threads do some work first, as a training run's would
def rows(i): return x[i].sum().item()   # indexing a large tensor: a parallel operation
print('forking', flush=True)
with multiprocessing.get_context('fork').Pool(2) as pool: print(len(pool.map(rows, [[3, 6, 8, 1], [4, 5]])))
'''

@pytest.mark.skipif('fork' not in __import__('multiprocessing').get_all_start_methods(), reason='no fork here')
def test_a_process_forked_after_training_does_not_hang(tmp_path):
    "The course's loader on a `multiprocessing.Pool` forks after training; PyTorch's threads do not survive it."
    script = tmp_path/'pool.py'; script.write_text(FORKED_POOL)
    # without minitrain's at-fork hook, the same script hangs in the workers: the fact the hook is there for.
    # The pool's work takes milliseconds, so five seconds after the fork is a hang, however busy the machine.
    p = subprocess.Popen([sys.executable, script, 'plain'], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert p.stdout.readline() == 'forking\n'   # bounded by the test's own timeout
        forked = time.monotonic()
        r = subprocess.run([sys.executable, script, 'minitrain'], capture_output=True, text=True, timeout=120)   # meanwhile
        assert r.returncode == 0 and r.stdout == 'forking\n2\n', r.stderr
        with pytest.raises(subprocess.TimeoutExpired): p.wait(timeout=max(0, 5 - (time.monotonic() - forked)))
    finally: os.killpg(p.pid, signal.SIGKILL); p.wait()   # the workers too, that hang
