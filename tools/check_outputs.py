"""Fail when a notebook's saved outputs are not what its code prints now.

`nbdev-test` fails only on exceptions, so a notebook can keep showing outputs from an older version of its code.
This re-runs each notebook the way `nbdev-test` does (a copy, in a worker process) and compares, cell by cell,
the text a reader sees: stdout, results and errors. stderr (progress bars, warnings) and images are not compared.

Most cells must print exactly what was saved. Two kinds of cell are compared more loosely:
- A cell that prints the outcome of a training run has a line `#|tolerance X`: its text must be the same, number
  for number, each whole number (an epoch, a count) exact, and each other number within X of the saved one.
  Another processor, or another number of threads, sums floats in another order, and a training run's last digits
  follow (see the README's "Numbers and machines"); X is the spread `tools/matrix.py measure` found across CPU
  settings, with a margin. 33 cells use it.
- A cell whose output changes from run to run for reasons that have nothing to do with the maths (a timing) opts
  out with a line `#|varies`. 16 cells use it, all of them timings or a progress bar's clock.

    python tools/check_outputs.py [NOTEBOOK ...]   # default: every notebook in nbs/
Exit status 1, with the notebook, the cell and a diff for each stale output.
"""
import difflib, json, re, shutil, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from fastcore.nbio import read_nb
from nbdev.test import test_nb

VARIES, TOLERANCE = '#|varies', '#|tolerance'
NUMBER = re.compile(r'[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?')

def directive(cell, name):
    "The rest of `cell`'s line `#|name ...` (spaces removed), or None if it has none."
    for l in cell.source.splitlines():
        l = l.replace(' ', '')
        if l.startswith(name): return l[len(name):]
    return None

def varies(cell):
    "Does `cell` opt out of the comparison?"
    return directive(cell, VARIES) == ''

def tolerance(cell):
    "The tolerance of `cell`'s numbers (`#|tolerance X`), or None where they must be exact."
    t = directive(cell, TOLERANCE)
    if t is None: return None
    try: return float(t)
    except ValueError: raise ValueError(f"`#|tolerance` needs a number, got {t!r}") from None

def shown(cell):
    "The text a reader sees under `cell`: stdout, results and errors, in order."
    parts = []
    for o in cell.get('outputs', []):
        kind = o.get('output_type')
        if kind == 'stream' and o.get('name') == 'stdout': parts.append(''.join(o.get('text', '')))
        elif kind in ('execute_result', 'display_data'): parts.append('[result] ' + ''.join(o.get('data', {}).get('text/plain', '')) + '\n')
        elif kind == 'error': parts.append(f"[error] {o.get('ename')}: {o.get('evalue')}\n")
    return ''.join(parts)

def split_numbers(text):
    "`text` as its words without the numbers (whitespace runs as one space) and the numbers, as floats."
    return ' '.join(NUMBER.sub('#', text).split()), [float(n) for n in NUMBER.findall(text)]

def beyond(saved, fresh, tol):
    "Why `fresh` is not `saved` within `tol` for each number (another text, or the numbers too far), or None."
    (words_a, nums_a), (words_b, nums_b) = split_numbers(saved), split_numbers(fresh)
    if words_a != words_b or len(nums_a) != len(nums_b): return 'its text changed, not only its numbers'
    whole = [n.lstrip('+-').isdigit() for n in NUMBER.findall(saved)]
    if any(w and a != b for w, a, b in zip(whole, nums_a, nums_b)): return 'a whole number changed (an epoch, a count): those are exact'
    far = [(a, b) for a, b in zip(nums_a, nums_b) if abs(a - b) - tol > 1e-9 * max(1., abs(a))]   # 0.98 - 0.96 is 0.02 + 2e-17
    if not far: return None
    return f"{len(far)} number(s) beyond its tolerance of {tol:g}: " + ', '.join(f'{a:g} now {b:g}' for a, b in far[:5])

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
        tol = tolerance(a)
        why = 'the output is stale' if tol is None else beyond(shown(a), shown(b), tol)
        if why is None: continue
        first = next((l for l in a.source.splitlines() if l.strip() and not l.startswith('#|')), '')
        diff = ''.join(difflib.unified_diff(shown(a).splitlines(True), shown(b).splitlines(True), 'saved output', 'fresh output'))
        reports.append(f"{fn}: code cell {i} (`{first[:60]}`) shows a stale output ({why}):\n{diff}")
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
