"""Where the README's test command spends its time: each worker's notebooks or tests, when each ran, and how long a core
stood idle while the other finished.

    python bench/suite_schedule.py [nbdev|pytest|both] [ARG...]   (from the repository's root; MINITRAIN_DATA set)

ARGs go to the command (`nbdev nbs/05_backprop.ipynb`, `pytest tests/test_stack.py`), to try it on a part. With
`SUITE_SCHEDULE_KEEP=FILE` set, the timeline's rows are also kept in FILE (one JSON object a line, each with the name of
the command it came from), to be read again: which tests of a file took what, or what ran beside a slow one.

`nbdev-test` runs the notebooks in the order of their names on two worker processes, and `pytest` hands its tests to
pytest-xdist's two workers in the order of the files it is given (tests/conftest.py puts the slowest files first). The
command's time is the sum of what its parts cost in CPU over two cores, plus what the order wastes: a worker with
nothing left to do while the other runs its last notebook or test. This runs each the usual way, with a timeline of
every notebook or test (start, end, and the CPU time of its process and of the processes it waited for), and reports
the wall time, each worker's time busy and when it finished, the tail (the time between the first and the last
worker's end), and the notebooks or tests that took longest. Timings on a shared machine vary from run to run by 10 to
20%; the tail is what the order decides.
"""
import json, os, subprocess, sys, tempfile, textwrap, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# what both write: one line of JSON for a notebook or test, its worker, start and end, and the CPU time of its process and
# of the processes it waited for, from `os.times()` before and after
WRITE = textwrap.dedent('''
    import json, os, time
    def write(worker, name, t0, c0):
        c1 = os.times()
        with open(os.environ['SUITE_SCHEDULE_LOG'], 'a') as f:
            f.write(json.dumps({'worker': worker, 'name': name, 't0': t0, 't1': time.time(),
                                'cpu': c1.user + c1.system - c0.user - c0.system,
                                'kids': c1.children_user + c1.children_system - c0.children_user - c0.children_system}) + '\\n')
''')

# a pytest plugin that writes the line for each test
PLUGIN = WRITE + textwrap.dedent('''
    import pytest
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        t0, c0 = time.time(), os.times()
        yield
        write(os.environ.get('PYTEST_XDIST_WORKER', 'main'), item.nodeid, t0, c0)
''')

# nbdev-test with its test_nb wrapped to write the same line for each notebook; its workers are forked from this process
# and find the wrapper under test_nb's own name when the notebook is sent to them
NBDEV = WRITE + textwrap.dedent('''
    import sys
    import nbdev.test as t
    plain = t.test_nb
    def test_nb(fn, *args, **kwargs):
        t0, c0 = time.time(), os.times()
        res = plain(fn, *args, **kwargs)
        write(str(os.getpid()), os.path.basename(str(fn)), t0, c0)
        return res
    test_nb.__module__ = 'nbdev.test'
    t.test_nb = test_nb
    t.nbdev_test(*sys.argv[1:2])   # a notebook, or all
''')

def timeline(name, cmd, folder, env=None):
    "Run `cmd` (the command `name`) with the timeline's log in `folder`: its wall time, exit status, and the rows logged."
    log = folder/'log.jsonl'
    log.unlink(missing_ok=True)
    env = {**os.environ, **(env or {}), 'SUITE_SCHEDULE_LOG': str(log)}
    start = time.time()
    r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    wall = time.time() - start
    rows = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    if keep := os.environ.get('SUITE_SCHEDULE_KEEP'):
        with open(keep, 'a') as f: f.writelines(json.dumps({'command': name, **r}) + '\n' for r in rows)
    return start, wall, r.returncode, rows

def report(title, start, wall, code, rows, top=8):
    print(f"{title}: {wall:.1f} s, exit status {code}, {len(rows)} timed")
    if not rows: return
    ends = {}
    for w in sorted({r['worker'] for r in rows}):
        mine = [r for r in rows if r['worker'] == w]
        busy, cpu = sum(r['t1'] - r['t0'] for r in mine), sum(r['cpu'] + r['kids'] for r in mine)
        first, ends[w] = min(r['t0'] for r in mine) - start, max(r['t1'] for r in mine) - start
        print(f"  worker {w}: {len(mine)} run, first from {first:.1f} s, busy {busy:.1f} s, CPU {cpu:.1f} s, done at {ends[w]:.1f} s")
    done = sorted(ends.values())
    print(f"  tail: {done[-1] - done[0]:.1f} s with a worker idle; after the last: {wall - done[-1]:.1f} s to the command's end")
    print(f"  longest:")
    for r in sorted(rows, key=lambda r: r['t0'] - r['t1'])[:top]:
        print(f"    {r['t1'] - r['t0']:6.1f} s  (CPU {r['cpu']:5.1f} + {r['kids']:5.1f} in processes it started)  "
              f"from {r['t0'] - start:5.1f} s  {r['name']}")

def main():
    which, args = (sys.argv[1] if len(sys.argv) > 1 else 'both'), sys.argv[2:]
    if which not in ('nbdev', 'pytest', 'both'): sys.exit(f"suite_schedule.py: say nbdev, pytest or both, not {which!r}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if which in ('nbdev', 'both'):
            report('nbdev-test', *timeline('nbdev-test', [sys.executable, '-c', NBDEV, *args], tmp))
        if which in ('pytest', 'both'):
            (tmp/'suite_schedule_plugin.py').write_text(PLUGIN)
            path = os.pathsep.join(p for p in [str(tmp), os.environ.get('PYTHONPATH')] if p)
            cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'suite_schedule_plugin', *args]
            report('pytest', *timeline('pytest', cmd, tmp, env={'PYTHONPATH': path}))

if __name__ == '__main__': main()
