"""Run a command, or measure the notebooks' printed numbers, under the CPU settings that change float results.

PyTorch chooses its CPU kernels by the processor's instruction set, MKL chooses its own, and both add floats in
another order with another number of threads. Each setting below makes this machine compute as another one would:
- `ATEN_CPU_CAPABILITY`: `avx512`, `avx2` or `default` (read when torch is imported). A setting above what this
  processor has is left out, and said so: on PyTorch 2.13, `avx512` on a processor without AVX-512 does not fall
  back to AVX2, and a softmax kills the process with SIGILL.
- `OMP_NUM_THREADS`: 1 or 2 (the notebooks take it under nbdev-test, instead of their one thread).
- `MKL_CBWR`: unset or `AVX2`; `--extra` adds `COMPATIBLE`, MKL's slowest and plainest code path.

    python tools/matrix.py run -- nbdev-test      # the command under every setting; exit 1 if any setting fails
    python tools/matrix.py measure [NB ...]        # each notebook under every setting, and the spread of each
                                                   # printed number, cell by cell (default: every notebook)
`measure` runs every cell even after one fails, so that it shows the numbers a failing check saw.
"""
import itertools, json, os, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from check_outputs import shown, split_numbers, tolerance, varies

def settings(extra=False):
    "The settings this processor can run, as dicts of environment variables; and a line for each one left out."
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    native = subprocess.run([sys.executable, '-c', probe], env=environ({}), capture_output=True, text=True).stdout.strip().lower()
    order = ['default', 'avx2', 'avx512']   # a setting above the processor's own runs instructions it lacks
    top = next((i for i, c in enumerate(order) if native.startswith(c)), len(order) - 1)
    caps = order[:top + 1][::-1]
    left_out = [f"ATEN_CPU_CAPABILITY={c}: this processor's kernels go up to {native}" for c in order[top + 1:]]
    mkls = [None, 'AVX2'] + (['COMPATIBLE'] if extra else [])
    return [{'ATEN_CPU_CAPABILITY': c, 'OMP_NUM_THREADS': str(t), **({'MKL_CBWR': m} if m else {})}
            for c, t, m in itertools.product(caps, [1, 2], mkls)], left_out

def name(setting): return ' '.join(f'{k}={v}' for k, v in setting.items())

def environ(setting):
    env = {k: v for k, v in os.environ.items() if k not in ('ATEN_CPU_CAPABILITY', 'OMP_NUM_THREADS', 'MKL_CBWR')}
    return {**env, **setting}

def run(cmd, extra=False):
    "Run `cmd` under every setting, one after the other; a line for each; exit 1 if any failed."
    sets, left_out = settings(extra)
    for l in left_out: print(f'left out: {l}')
    failed = []
    for s in sets:
        start = time.time()
        r = subprocess.run(cmd, env=environ(s), shell=isinstance(cmd, str))
        print(f"{'passed' if r.returncode == 0 else 'FAILED'} in {time.time() - start:.0f} s: {name(s)}", flush=True)
        if r.returncode: failed.append(name(s))
    if failed: sys.exit(f"{len(failed)} of {len(sets)} settings failed: " + '; '.join(failed))
    print(f"all {len(sets)} settings passed")

def execute(fn, out):
    "Run every cell of a copy of notebook `fn` as nbdev-test does, errors or not; write each code cell's text to `out`."
    import shutil
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.process import NBProcessor
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)/Path(fn).name
        shutil.copy(fn, tmp)
        os.environ['IN_TEST'] = '1'
        sys.path.insert(0, str(ROOT))
        nb = NBProcessor(tmp, rm_directives=False, process=True).nb
        skip = lambda c: c.cell_type != 'code' or 'notest' in c.directives_ or str(c.directives_.get('eval')).lower() == 'false'
        with working_directory(tmp.parent): CaptureShell(tmp).run_all(nb, exc_stop=False, preproc=skip)
        Path(out).write_text(json.dumps([shown(c) for c in nb.cells if c.cell_type == 'code']))

def spread(fn, texts):
    "For each code cell of `fn` whose numbers vary between `texts` (setting name -> cell texts): a line of report."
    from fastcore.nbio import read_nb
    cells = [c for c in read_nb(fn).cells if c.cell_type == 'code']
    lines = []
    for i, c in enumerate(cells):
        outs = {s: t[i] for s, t in texts.items() if i < len(t)}
        errors = sorted(s for s, t in outs.items() if '[error]' in t)
        if errors: lines.append(f"  cell {i}: an error under {len(errors)} setting(s): {errors[0]}: "
                                f"{outs[errors[0]].split('[error]', 1)[1].strip()[:200]}")
        split = {s: split_numbers(t) for s, t in outs.items()}
        words = {w for w, _ in split.values()}
        if len(words) > 1:
            if not varies(c): lines.append(f"  cell {i}: its text differs between settings, not only its numbers")
            continue
        nums = [n for _, n in split.values()]
        if len({len(n) for n in nums}) > 1 or not nums or not nums[0]: continue
        ranges = [max(col) - min(col) for col in zip(*nums)]
        widest = max(ranges)
        if widest == 0: continue
        tol = tolerance(c)
        verdict = 'varies' if varies(c) else 'NO TOLERANCE' if tol is None else f'tolerance {tol:g}' + (' EXCEEDED' if widest > tol else '')
        first = next((l for l in c.source.splitlines() if l.strip() and not l.startswith('#|')), '')
        lines.append(f"  cell {i} (`{first[:50]}`): spread {widest:.4g} over {len(nums)} settings, "
                     f"{sum(r > 0 for r in ranges)} of {len(ranges)} numbers vary; {verdict}")
    return lines

def measure(fns, extra=False, save=None):
    sets, left_out = settings(extra)
    for l in left_out: print(f'left out: {l}')
    texts = {fn: {} for fn in fns}
    with tempfile.TemporaryDirectory() as d:
        def one(job):
            s, fn = job
            out = Path(d)/f'{abs(hash((name(s), str(fn))))}.json'
            r = subprocess.run([sys.executable, __file__, '--one', str(fn), str(out)], env=environ(s), capture_output=True, text=True)
            if r.returncode or not out.exists(): print(f"{fn.name} under {name(s)}: the run failed\n{r.stderr[-2000:]}", flush=True)
            else: texts[fn][name(s)] = json.loads(out.read_text())
        with ThreadPoolExecutor(2) as ex: list(ex.map(one, [(s, fn) for s in sets for fn in fns]))
    if save: Path(save).write_text(json.dumps({str(k): v for k, v in texts.items()}))
    for fn in fns:
        print(f"{fn.name}: {len(texts[fn])} settings")
        for l in spread(fn, texts[fn]): print(l)

def main(args):
    extra = '--extra' in args
    args = [a for a in args if a != '--extra']
    if args[:1] == ['--one']: return execute(Path(args[1]), args[2])
    if args[:1] == ['run'] and '--' in args: return run(args[args.index('--') + 1:], extra)
    if args[:1] == ['measure']:
        save = None
        if '--save' in args: i = args.index('--save'); save = args[i + 1]; args = args[:i] + args[i + 2:]
        fns = [Path(a).resolve() for a in args[1:]] or sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith('_'))
        return measure(fns, extra, save)
    sys.exit(__doc__)

if __name__ == '__main__': main(sys.argv[1:])
