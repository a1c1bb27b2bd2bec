"""Fuzz `ArrayUnpickler` with pickles made of the opcodes and callables its allow-list admits, combined at random.

    python tests/fuzz_pickle.py [N]      # N random examples (default 150), then the known ones; exit 0 when all behaved
    python tests/fuzz_pickle.py 0        # only the pickles found by hand

Run by tests/test_fuzz.py in a subprocess, so that a crash (a segfault, say) fails that test instead of ending the
test run. Each example must load arrays of MNIST's dtypes and shapes or be refused with `MNISTFileError`; it must not
crash, run code, or build arrays larger than the bytes the file holds.
"""
import gzip, os, pickle, struct, sys, tempfile
from pathlib import Path
import numpy as np
from hypothesis import given, settings, strategies as st, HealthCheck
from minitrain.data import load_pickle, MNISTFileError

MARKER = Path(tempfile.mkdtemp())/'ran'   # a pickle that could run code would create this file

def op_global(module, name): return b'c' + module.encode() + b'\n' + name.encode() + b'\n'
def op_int(v): return b'J' + struct.pack('<i', v)
def op_bytes(b): return b'C' + bytes([len(b)]) + b if len(b) < 256 else b'B' + struct.pack('<I', len(b)) + b
def op_str(s):
    b = s.encode('utf-8')
    return b'X' + struct.pack('<I', len(b)) + b

# the two pickles found by hand: an object array used as a shape (a segfault), and 3 GB of uninitialised memory
SEGFAULT = (b'\x80\x02' + op_global('numpy', 'ndarray') + b'(' + op_global('numpy', 'ndarray') + b'(' + op_int(1) + b'\x85' +
            op_global('numpy', 'dtype') + op_str('O') + b'\x85R' + op_bytes(b'A' * 8) + b'tR' + op_str('float32') + b'tR.')
UNINITIALISED = (b'\x80\x02' + op_global('numpy', 'ndarray') + b'(' + op_int(10**6) + op_int(784) + b'\x86' +
                 op_str('float32') + b'tR.')

GLOBALS = [('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', '_reconstruct'),
           ('numpy._core.multiarray', '_reconstruct'), ('_codecs', 'encode'), ('os', 'system'), ('builtins', 'eval')]
DTYPES = ['O', '|O', 'O8', 'f4', '<f4', 'u1', 'i8', 'V8', 'b', 'f8', '>i4', 'c16', 'U3', 'S4', '?']

atoms = st.one_of(
    st.sampled_from(GLOBALS).map(lambda g: op_global(*g)),
    st.integers(-2**31, 2**31 - 1).map(op_int),
    st.sampled_from([0, 1, 2, 3, 5, 8, 784, 10**6, 2**31 - 1, -1]).map(op_int),
    st.binary(max_size=300).map(op_bytes),
    st.sampled_from(DTYPES).map(op_str),
    st.sampled_from(DTYPES).map(lambda d: op_bytes(d.encode())),
    st.just(op_str('latin1')), st.just(op_str(f'touch {MARKER}')),
    st.sampled_from([b'N', b'\x88', b'\x89', b')', b'(', b't', b'\x85', b'\x86', b'\x87', b'R', b'b', b'0', b'2', b'\x94']),
    st.sampled_from([b'h\x00', b'h\x01', b'q\x00', b'q\x01', b']', b'a', b'}', b'e', b'I1\n', b'S"x"\n', b'.']),
)

def state_tuple():
    "An ndarray's BUILD state, right or wrong in each part."
    return st.tuples(st.sampled_from(DTYPES), st.lists(st.sampled_from([0, 1, 2, 3, 4, 7, 8, 196, 10**6]), max_size=3),
                     st.integers(0, 64), st.booleans()).map(build_array)

def build_array(args):
    "A pickle fragment that rebuilds an array with `_reconstruct` and sets its state, as numpy's pickles do."
    dtype, shape, nbytes, fortran = args
    rec = op_global('numpy.core.multiarray', '_reconstruct') + op_global('numpy', 'ndarray') + op_int(0) + b'\x85' + \
          op_bytes(b'b') + b'\x87' + b'R'
    state = b'(' + op_int(1) + b'(' + b''.join(op_int(s) for s in shape) + b't' + \
            op_global('numpy', 'dtype') + op_str(dtype) + b'\x88\x89\x87' + b'R' + (b'\x88' if fortran else b'\x89') + \
            op_bytes(bytes(nbytes)) + b't'
    return rec + state + b'b'

programs = st.lists(st.one_of(atoms, state_tuple()), min_size=1, max_size=40).map(lambda ops: b'\x80\x02' + b''.join(ops) + b'.')

def check(payload, folder):
    fn = folder/'mnist.pkl.gz'
    with gzip.open(fn, 'wb') as f: f.write(payload)
    try: splits = load_pickle(fn)
    except MNISTFileError: splits = None
    assert not MARKER.exists(), 'a pickle ran code'
    if splits is not None:   # what loads must be MNIST-shaped, and no larger than the file's own bytes
        for x, y in splits:
            assert x.dtype.is_floating_point and x.shape[1] == 784 and y.ndim == 1
            assert x.numel() * 4 + y.numel() * 8 <= 8 * len(payload)

def main(n):
    folder = Path(tempfile.mkdtemp())
    tried = []
    if n:
        @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(programs)
        def fuzz(payload):
            tried.append(payload)
            check(payload, folder)
        fuzz()
    for p in (SEGFAULT, UNINITIALISED): check(p, folder)
    print(f"{len(tried) + 2} pickles tried: none crashed, ran code or loaded more than it held")

if __name__ == '__main__': main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
