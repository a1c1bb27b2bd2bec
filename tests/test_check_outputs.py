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
