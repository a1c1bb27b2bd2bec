"""Run one of minitrain's own lessons (a notebook in nbs/) in this process, cell by cell, with a deliberate change.

The lessons check the outcome of each training run within a tolerance measured across processors (see the README's
"Numbers and machines"). A tolerance is honest only if it still catches a real mistake, so the tests put one into the
lesson's own code (a learning rate ten times too large, a missing `zero_grad`, shuffled labels) and run the lesson's
own check on the result: it must fail.
"""
import contextlib, io, os
from pathlib import Path
import torch
from course import code_cells, unmagic

NBS = Path(__file__).resolve().parent.parent/'nbs'

def run_lesson(name, until, changes=(), after=None, skip=None):
    """Run lesson `name`'s code cells in order, in one namespace, as nbdev-test does (`IN_TEST` set, in nbs/), up to the
    first cell that contains `until` (after the first that contains `after`, if given). `changes` are `(old, new)`
    replacements, each of which must be found once in the cells up to it. Cells before the check that contain `skip`
    (a string, or any of a tuple of them, each found at least once) are left out: for work that the check does not stand
    on (a name they define and a later cell uses fails loudly, as an error in an earlier cell). Returns what that cell
    raised (None if nothing); an error in an earlier cell is raised."""
    import matplotlib, matplotlib.pyplot as plt
    matplotlib.use('Agg')
    cells = code_cells(name, NBS)
    start = 0 if after is None else next((i + 1 for i, c in enumerate(cells) if after in c), len(cells))
    stop = next((i for i, c in enumerate(cells) if i >= start and until in c), None)
    if stop is None: raise ValueError(f'no cell of {name} contains {until!r}')
    cells = cells[:stop + 1]
    if skip is not None:
        skip = (skip,) if isinstance(skip, str) else tuple(skip)
        if unused := [k for k in skip if not any(k in c for c in cells[:-1])]: raise ValueError(f'no cell of {name} before the check contains {unused}')
        cells = [c for c in cells[:-1] if not any(k in c for k in skip)] + cells[-1:]
        stop = len(cells) - 1
    for old, new in changes:
        hits = [i for i, c in enumerate(cells) if old in c]
        if len(hits) != 1: raise ValueError(f'{old!r} is in {len(hits)} cells of {name} before the check, not one')
        cells[hits[0]] = cells[hits[0]].replace(old, new)
    threads, deterministic, cwd, env = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), os.getcwd(), os.environ.get('IN_TEST')
    ns = {'__name__': '__lesson__'}
    try:
        os.environ['IN_TEST'] = '1'; os.chdir(NBS)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for i, src in enumerate(cells):
                src = '\n'.join(unmagic(l) for l in src.splitlines())
                try: exec(compile(src, f'<{name} cell {i}>', 'exec'), ns)
                except Exception as e:
                    if i == stop: return e
                    raise
        return None
    finally:
        os.chdir(cwd)
        if env is None: os.environ.pop('IN_TEST', None)
        else: os.environ['IN_TEST'] = env
        torch.set_num_threads(threads)
        if torch.are_deterministic_algorithms_enabled() != deterministic:   # its first call imports the compiler (1 s)
            torch.use_deterministic_algorithms(deterministic)
        torch.set_printoptions(profile='default')
        plt.close('all')
