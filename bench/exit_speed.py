"""How long does a process take to end after its last line, with and without `minitrain.cli.quick_exit`?

    python bench/exit_speed.py [--reps 7]

Each run is a new Python that imports PyTorch (and, in the second case, `torch._dynamo`, which `DistributedDataParallel`
imports in every torchrun worker), prints the time and returns; the time to its end is measured from that line. The
two ways run interleaved; medians.
"""
import argparse, statistics, subprocess, sys, time

CODE = '''
import atexit, sys, time, torch{more}
from minitrain.cli import quick_exit
if sys.argv[1] == 'quick_exit': atexit.register(quick_exit)
print(time.monotonic(), flush=True)
'''

def exit_seconds(way, more):
    "Seconds from a new process's last line to its end."
    p = subprocess.Popen([sys.executable, '-c', CODE.format(more=more), way], stdout=subprocess.PIPE, text=True)
    t = float(p.stdout.readline())
    assert p.wait() == 0
    return time.monotonic() - t

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=7)
    args = p.parse_args()
    for what, more in [('torch', ''), ('torch and torch._dynamo', ', torch._dynamo')]:
        times = {'plain exit': [], 'quick_exit': []}
        for _ in range(args.reps):
            for way in times: times[way].append(exit_seconds(way, more))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{what:24} plain exit {med['plain exit']:.3f} s, with quick_exit {med['quick_exit']:.3f} s "
              f"({med['plain exit'] - med['quick_exit']:.3f} s sooner)")

if __name__ == '__main__': main()
