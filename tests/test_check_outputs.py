"tools/check_outputs.py: a notebook whose saved output is stale fails the check; a fresh or opted-out one passes."
import subprocess, sys
from pathlib import Path
import nbformat
from nbformat.v4 import new_notebook, new_code_cell, new_output

ROOT = Path(__file__).resolve().parent.parent

def notebook(path, cells):
    "Write a notebook of `(source, saved stdout)` code cells."
    nb = new_notebook(cells=[new_code_cell(src, outputs=[new_output('stream', name='stdout', text=out)] if out else [])
                             for src, out in cells])
    nbformat.write(nb, path)
    return path

def check(path):
    return subprocess.run([sys.executable, str(ROOT/'tools'/'check_outputs.py'), str(path)], capture_output=True, text=True, timeout=120)

def test_fresh_outputs_pass(tmp_path):
    r = check(notebook(tmp_path/'ok.ipynb', [('print(1 + 1)', '2\n'), ('x = 3', None)]))
    assert r.returncode == 0, r.stderr

def test_stale_output_fails_with_cell_and_diff(tmp_path):
    r = check(notebook(tmp_path/'stale.ipynb', [('x = 1', None), ('print(x + 1)', '3\n')]))
    assert r.returncode == 1
    assert 'stale.ipynb: code cell 1 (`print(x + 1)`)' in r.stderr
    assert '-3' in r.stderr and '+2' in r.stderr

def test_missing_output_fails(tmp_path):
    r = check(notebook(tmp_path/'cleared.ipynb', [('print("hello")', None)]))
    assert r.returncode == 1 and '+hello' in r.stderr

def test_varies_marker_opts_out(tmp_path):
    r = check(notebook(tmp_path/'timing.ipynb', [('#|varies\nimport time; print(time.time())', '123.0\n')]))
    assert r.returncode == 0, r.stderr

def test_exception_fails(tmp_path):
    r = check(notebook(tmp_path/'boom.ipynb', [('1/0', None)]))
    assert r.returncode == 1 and 'raised an exception' in r.stderr

def test_tolerance_allows_a_runs_last_digits_and_nothing_else(tmp_path):
    """In a cell whose numbers may move by 0.02 (another CPU's trajectory), a saved 0.12 that now prints 0.11 passes;
    a saved 0.12 changed by hand to 0.49 fails, and so do other words, another count of numbers, or another whole
    number (an epoch) even within the tolerance; without the marker, numbers are exact. One notebook, so one run of the tool."""
    r = check(notebook(tmp_path/'tol.ipynb', [('#|tolerance 0.02\nprint("0.11, 0.96")', '0.12, 0.98\n'),
                                              ('#|tolerance 0.02\nprint("0.12, 0.98")', '0.49, 0.98\n'),
                                              ('#|tolerance 0.5\nprint("accuracy 0.12")', 'loss 0.12\n'),
                                              ('#|tolerance 0.5\nprint("accuracy 0.12")', 'accuracy 0.12, 0.5\n'),
                                              ('print(0.11)', '0.12\n'),
                                              ('#|tolerance 1.2\nprint("epoch 1 0.5")', 'epoch 0 0.5\n')]))
    assert r.returncode == 1 and 'code cell 0' not in r.stderr, r.stderr
    assert 'tol.ipynb: code cell 1 (`print("0.12, 0.98")`) shows a stale output (1 number(s) beyond its tolerance of 0.02: 0.49 now 0.12)' in r.stderr
    assert r.stderr.count('its text changed, not only its numbers') == 2 and 'code cell 4 (`print(0.11)`) shows a stale output (the output is stale)' in r.stderr
    assert 'code cell 5 (`print("epoch 1 0.5")`) shows a stale output (a whole number changed' in r.stderr
    assert '5 stale output(s)' in r.stderr

def test_numbers_are_split_from_the_words():
    import sys; sys.path.insert(0, str(ROOT/'tools'))
    from check_outputs import split_numbers
    assert split_numbers("{'accuracy': '0.955', 'epoch': 2}  tensor([-1.5e-03,  7.])") == \
        ("{'accuracy': '#', 'epoch': #} tensor([#, #])", [0.955, 2., -1.5e-3, 7.])

def test_docstring_counts_the_cells_that_use_each_marker():
    "The tool's docstring says how many cells compare loosely; it must say the truth."
    import re, sys; sys.path.insert(0, str(ROOT/'tools'))
    import check_outputs
    from fastcore.nbio import read_nb
    cells = [c for fn in sorted((ROOT/'nbs').glob('*.ipynb')) for c in read_nb(fn).cells if c.cell_type == 'code']
    n_tol = sum(check_outputs.tolerance(c) is not None for c in cells)
    n_var = sum(check_outputs.varies(c) for c in cells)
    assert re.findall(r'(\d+) cells use it', check_outputs.__doc__) == [str(n_tol), str(n_var)], (n_tol, n_var)
