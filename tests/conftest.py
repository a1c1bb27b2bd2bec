import os
if os.environ.get('PYTEST_XDIST_WORKER'):   # two workers on two cores: one thread each, for them and what they start
    os.environ.setdefault('OMP_NUM_THREADS', '1')
import atexit, contextlib, io, shutil, subprocess, sys
import numpy as np, pytest

# Nothing here imports PyTorch: pytest-xdist's controller, which runs no test, starts its workers without waiting the
# 1.3 s that importing it takes. A process that did import it (a worker) ends as the command does, without the
# interpreter's sweeps of PyTorch's objects at exit (nbs/11_cli.ipynb, "A quick exit"): 0.7 s sooner.
@atexit.register
def end_quickly():
    if 'torch' in sys.modules:
        from minitrain.cli import quick_exit
        quick_exit()

# The files whose tests take longest run first, each in its own order: pytest-xdist hands out tests in the order it is
# given them, and a run that ends on a few slow tests leaves the other worker idle: 6.1 s at the end of a full run in
# the test files' order, 3.6 s in this one (bench/suite_schedule.py)
SLOW_FIRST = ['test_course.py', 'test_checkpoint.py', 'test_tolerances.py', 'test_distributed.py', 'test_hardening.py', 'test_cli.py']

def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # a stable sort

def make_mnist(folder, n_train=30, n_test=5, seed=0):
    "Write small synthetic MNIST IDX files into `folder/mnist/` and return `folder`."
    from minitrain.data import write_idx
    rng = np.random.default_rng(seed)
    (folder/'mnist').mkdir(parents=True, exist_ok=True)
    for prefix, n in [('train', n_train), ('t10k', n_test)]:
        labels = rng.integers(0, 10, n)
        imgs = np.zeros((n, 28, 28), np.uint8)
        imgs[np.arange(n), 4 + 2*labels, 4:24] = 255  # a bar whose row tells the label: learnable, and compresses well
        write_idx(folder/'mnist'/f'{prefix}-images-idx3-ubyte.gz', imgs)
        write_idx(folder/'mnist'/f'{prefix}-labels-idx1-ubyte.gz', labels)
    return folder

@pytest.fixture
def mnist_dir(tmp_path): return make_mnist(tmp_path/'data')

def once_per_run(tmp_path_factory, name, make):
    """The folder `name`, filled by `make(folder)` once in a test run: pytest-xdist's workers share it, the first to come
    making it while the others wait (a module-scoped fixture would be made once in each worker)."""
    from filelock import FileLock   # PyTorch's own dependency
    root = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'): root = root.parent   # the run's folder, above each worker's own
    folder = root/name
    with FileLock(str(root/f'{name}.lock')):
        if not (folder/'.made').exists():
            shutil.rmtree(folder, ignore_errors=True); folder.mkdir()
            make(folder)
            (folder/'.made').touch()
    return folder

# Python started with SIGINT ignored keeps ignoring it, as every run started under a test run that is itself a script's
# background job (`pytest &`) would: a run a test interrupts with Ctrl-C first takes SIGINT as a terminal's Python has it
AS_FROM_A_TERMINAL = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "

def run_cli(*args, code="import sys; from minitrain.cli import main; sys.exit(main())"):
    "Run `minitrain-fit` with `args` in a separate Python, as a user would (or `code` that calls it); the CompletedProcess."
    return subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True, timeout=120)

class Run:
    "What a run of the command gave: its exit status and what it printed."
    def __init__(self, returncode, stdout, stderr): self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

@pytest.fixture
def cli(monkeypatch, capsys):
    """`minitrain-fit` in this process: `main()` returns the exit status, and catches what a user can fix, so a refusal
    or a short run needs no new Python (2 s of importing torch each); the mirrors point at a closed port on 127.0.0.1."""
    import minitrain.data as d
    from minitrain.cli import main
    monkeypatch.setattr(d, 'MIRRORS', ['http://127.0.0.1:9/a/', 'http://127.0.0.1:9/b/'])
    def run(*args, env=None):
        for k, v in (env or {}).items(): monkeypatch.setenv(k, v)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)
    return run

def quiet(f, *args, **kwargs):
    "Call `f` in this process with its printing captured; returns its result and what it printed."
    with contextlib.redirect_stdout(io.StringIO()) as out: res = f(*args, **kwargs)
    return res, out.getvalue()
