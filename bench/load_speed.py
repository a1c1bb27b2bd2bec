"""How long does `load_mnist` take to read MNIST from the cache, from the IDX files and from `mnist.pkl.gz`?

    python bench/load_speed.py [--reps 5]

Needs a data folder with both formats (set MINITRAIN_DATA). The two loaders run interleaved in one process; medians.
"""
import argparse, statistics, time
from minitrain.data import data_dir, load_idx, load_pickle

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=5)
    args = p.parse_args()
    folder = data_dir()
    loaders = {'IDX': lambda: load_idx(folder/'mnist'), 'pickle': lambda: load_pickle(folder/'mnist.pkl.gz')}
    times = {k: [] for k in loaders}
    for _ in range(args.reps):
        for k, f in loaders.items():
            t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items(): print(f"  {k:7} {v:.2f}s")
    print(f"pickle / IDX = {med['pickle']/med['IDX']:.1f}")

if __name__ == '__main__': main()
