"""Fail when a notebook's saved outputs are not what its code prints now.

`nbdev-test` fails only on exceptions, so a notebook can keep showing outputs from an older version of its code.
This re-runs each notebook the way `nbdev-test` does (a copy, in a worker process) and compares, cell by cell,
the text a reader sees: stdout, results and errors. stderr (progress bars, warnings) and images are not compared.
A cell whose output legitimately changes from run to run (a timing, say) opts out with a line `#|varies`.

    python tools/check_outputs.py [NOTEBOOK ...]   # default: every notebook in nbs/
Exit status 1, with the notebook, the cell and a diff for each stale output.
"""
import difflib, json, shutil, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from fastcore.nbio import read_nb
from nbdev.test import test_nb

MARKER = '#|varies'

def varies(cell):
    "Does `cell` opt out of the comparison?"
    return any(l.replace(' ', '') == MARKER for l in cell.source.splitlines())

def shown(cell):
    "The text a reader sees under `cell`: stdout, results and errors, in order."
    parts = []
    for o in cell.get('outputs', []):
        kind = o.get('output_type')
        if kind == 'stream' and o.get('name') == 'stdout': parts.append(''.join(o.get('text', '')))
        elif kind in ('execute_result', 'display_data'): parts.append('[result] ' + ''.join(o.get('data', {}).get('text/plain', '')) + '\n')
        elif kind == 'error': parts.append(f"[error] {o.get('ename')}: {o.get('evalue')}\n")
    return ''.join(parts)

def run_copy(fn, basepath):
    "Execute a copy of notebook `fn` as nbdev-test does; return the executed notebook, or None if a cell raised."
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)/Path(fn).name
        shutil.copy(fn, tmp)
        ok, _ = test_nb(tmp, skip_flags=['notest'], basepath=basepath, save=True, profile=False)
        return read_nb(tmp) if ok else None

def stale_cells(fn, fresh):
    "A report for each code cell of `fn` whose saved output differs from the one in the executed notebook `fresh`."
    saved = [c for c in read_nb(fn).cells if c.cell_type == 'code']
    new = [c for c in fresh.cells if c.cell_type == 'code']
    if len(saved) != len(new): return [f"{fn}: {len(saved)} code cells saved, but {len(new)} ran"]
    reports = []
    for i, (a, b) in enumerate(zip(saved, new)):
        if varies(a) or shown(a) == shown(b): continue
        first = next((l for l in a.source.splitlines() if l.strip() and not l.startswith('#|')), '')
        diff = ''.join(difflib.unified_diff(shown(a).splitlines(True), shown(b).splitlines(True), 'saved output', 'fresh output'))
        reports.append(f"{fn}: code cell {i} (`{first[:60]}`) shows a stale output:\n{diff}")
    return reports

def check(fn, basepath):
    "Reports of stale outputs in notebook `fn` (a failed run is one report)."
    fresh = run_copy(fn, basepath)
    return [f"{fn}: a cell raised an exception (see above)"] if fresh is None else stale_cells(Path(fn), fresh)

def check_in_subprocess(fn):
    "`check(fn)` in a fresh Python, as each notebook needs its own process (running one replaces `__main__`)."
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)/'reports.json'
        res = subprocess.run([sys.executable, __file__, '--one', str(fn), str(out)])
        return json.loads(out.read_text()) if res.returncode == 0 and out.exists() else [f"{fn}: the check itself failed (exit {res.returncode})"]

def main(args):
    root = Path(__file__).resolve().parent.parent
    if args[:1] == ['--one']:
        Path(args[2]).write_text(json.dumps(check(Path(args[1]), root)))
        return
    fns = [Path(a) for a in args] or sorted(p for p in (root/'nbs').glob('*.ipynb') if not p.name.startswith('_'))
    with ThreadPoolExecutor(2) as ex: reports = [r for rs in ex.map(check_in_subprocess, fns) for r in rs]
    for r in reports: print(r, file=sys.stderr)
    if reports: sys.exit(f"{len(reports)} stale output(s): re-run the notebook (`nbdev-test --save PATH`, then `nbdev-clean`) and commit it.")
    print(f"saved outputs match a fresh run in {len(fns)} notebook{'s' if len(fns) != 1 else ''}")

if __name__ == '__main__': main(sys.argv[1:])
