"""The download path against a real HTTP server on 127.0.0.1 that misbehaves in the ways networks do.

The server serves small synthetic IDX files under several prefixes, one per behaviour:
/good/ the real bytes; /bad/ other bytes (checksum mismatch); /404/ not found; /stall/ half the bytes, then silence;
/cut/ half the bytes, then the connection closes although Content-Length promised more.
"""
import hashlib, http.server, socket, stat, subprocess, sys, threading, time, shutil, os
from pathlib import Path
import pytest
import minitrain.data as data
from minitrain.data import download_mnist, load_mnist, DownloadError, MNISTFileError, ENV_VAR
from conftest import make_mnist

FILES = {}  # name -> SHA-256 of the synthetic files the server serves, passed to `download_mnist(files=...)`

class Handler(http.server.BaseHTTPRequestHandler):
    files = {}            # name -> bytes, set by the fixture
    hits = []             # the paths asked for, in order
    release = None        # threading.Event that ends a stall early, set by the fixture
    def log_message(self, *args): pass

    def do_GET(self):
        self.hits.append(self.path)
        _, mode, name = self.path.split('/', 2)
        body = self.files.get(name)
        if mode == '404' or body is None: return self.send_error(404)
        if mode == 'bad': body = b'\x1f\x8b' + bytes(len(body) - 2)
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if mode in ('good', 'bad'): return self.wfile.write(body)
        self.wfile.write(body[:len(body)//2]); self.wfile.flush()
        if mode == 'stall': self.release.wait(10)  # bounded: the server never holds a connection past 10 s
        self.close_connection = True               # 'cut', and a stall that ends: close with bytes missing

@pytest.fixture
def site(tmp_path):
    "A running server with synthetic MNIST files (their checksums in `FILES`). Yields the base URL."
    src = make_mnist(tmp_path/'src', n_train=40, n_test=8)/'mnist'
    Handler.files = {p.name: p.read_bytes() for p in src.iterdir()}
    Handler.release, Handler.hits = threading.Event(), []
    FILES.clear(); FILES.update({k: hashlib.sha256(Handler.files[k]).hexdigest() for k in data.MNIST_FILES})
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()   # shutdown waits up to a poll: 0.5 s by default
    yield f'http://127.0.0.1:{srv.server_port}'
    Handler.release.set(); srv.shutdown(); srv.server_close()

@pytest.fixture
def refused():
    "A URL on 127.0.0.1 where nothing listens."
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}/good/'

def cache_files(folder): return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).exists() else []

def test_good_mirror(site, tmp_path):
    download_mnist(tmp_path/'c', [site + '/good/'], files=FILES)
    assert cache_files(tmp_path/'c') == sorted(Handler.files)
    assert all((tmp_path/'c'/k).read_bytes() == v for k, v in Handler.files.items())

def test_checksum_mismatch_is_rejected_then_next_mirror(site, tmp_path):
    with pytest.raises(DownloadError, match='SHA-256'): download_mnist(tmp_path/'a', [site + '/bad/'], files=FILES)
    assert cache_files(tmp_path/'a') == []  # neither the file nor a temporary file is left
    download_mnist(tmp_path/'b', [site + '/bad/', site + '/good/'], files=FILES)
    assert all((tmp_path/'b'/k).read_bytes() == v for k, v in Handler.files.items())

def test_404_and_refused_fall_through(site, refused, tmp_path):
    download_mnist(tmp_path/'c', [site + '/404/', refused, site + '/good/'], files=FILES)
    assert cache_files(tmp_path/'c') == sorted(Handler.files)

def test_stall_times_out_without_partial_file(site, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match='timed out'): download_mnist(tmp_path/'c', [site + '/stall/'], timeout=0.5, files=FILES)
    assert time.monotonic() - t0 < 8
    assert cache_files(tmp_path/'c') == []

def test_cut_halfway_without_partial_file(site, tmp_path):
    with pytest.raises(DownloadError, match='closed after'): download_mnist(tmp_path/'c', [site + '/cut/'], timeout=5, files=FILES)
    assert cache_files(tmp_path/'c') == []

def test_every_mirror_failing_is_one_error_listing_each(site, refused, tmp_path):
    mirrors = [site + '/404/', refused, site + '/bad/', site + '/stall/']
    with pytest.raises(DownloadError) as e: download_mnist(tmp_path/'c', mirrors, timeout=0.5, files=FILES)
    msg = str(e.value)
    name = next(iter(data.MNIST_FILES))  # the first file is the one that fails
    for m, why in zip(mirrors, ['404', 'refused', 'SHA-256', 'timed out']):
        line = next(l for l in msg.splitlines() if m + name in l)
        assert why in line, line
    assert ENV_VAR in msg and str(tmp_path/'c') in msg

def test_load_mnist_downloads_then_reads_from_cache(site, tmp_path):
    download_mnist(tmp_path/'mnist', [site + '/good/'], files=FILES)   # what load_mnist does when the cache is empty
    (x, y), (xv, yv), (xt, yt) = load_mnist(tmp_path, n_valid=10, mirrors=[])  # now it must not need the network
    assert x.shape == (30, 784) and xt.shape == (8, 784)

def test_load_mnist_passes_its_mirrors_on(site, tmp_path):
    "With an empty cache, load_mnist downloads from the mirrors it is given (here they serve files of the wrong checksum)."
    with pytest.raises(DownloadError) as e: load_mnist(tmp_path, mirrors=[site + '/good/'])
    assert site + '/good/train-images-idx3-ubyte.gz' in str(e.value) and 'SHA-256' in str(e.value)

def corrupt(kind, fn):
    "Damage the cached IDX file `fn` in one of the ways real caches get damaged."
    good = fn.read_bytes()
    import gzip
    raw = gzip.decompress(good)
    if kind == 'truncated': fn.write_bytes(good[:len(good)//3])
    elif kind == 'not gzip': fn.write_text('<html><body>Service Unavailable</body></html>')
    elif kind == 'wrong magic': fn.write_bytes(gzip.compress(b'\x00\x00\x08\x01' + raw[4:]))
    elif kind == 'wrong sizes': fn.write_bytes(gzip.compress(raw[:-784]))
    elif kind == 'empty': fn.write_bytes(b'')

@pytest.mark.parametrize('kind', ['truncated', 'not gzip', 'wrong magic', 'wrong sizes', 'empty'])
def test_damaged_cache_names_the_file(kind, tmp_path):
    folder = make_mnist(tmp_path, n_train=40, n_test=8)
    bad = folder/'mnist'/'train-images-idx3-ubyte.gz'
    corrupt(kind, bad)
    with pytest.raises(MNISTFileError) as e: load_mnist(folder, n_valid=10)
    assert str(bad) in str(e.value) and 'Delete' in str(e.value)

def test_read_only_folder_is_a_clear_error(tmp_path):
    """A real read-only file system: a tmpfs mounted read-only in a private mount namespace (root), or chmod (others).
    One process: the command's one line, then `load_mnist`'s error."""
    ro = str(tmp_path/'ro')
    code = (f"import sys; from minitrain.cli import main; print('status', main(['--data', {ro!r}]), flush=True); "
            f"print('--- load_mnist', file=sys.stderr, flush=True); from minitrain.data import load_mnist; load_mnist({ro!r})")
    (tmp_path/'ro').mkdir()
    if os.geteuid() == 0:
        probe = subprocess.run(['unshare', '-m', 'mount', '-t', 'tmpfs', '-o', 'ro', 'tmpfs', str(tmp_path/'ro')],
                               capture_output=True, text=True) if shutil.which('unshare') else None
        if probe is None or probe.returncode: pytest.skip(f"root cannot be denied writes here without a read-only mount, and none can be made: {probe and probe.stderr}")
        cmd = ['unshare', '-m', 'sh', '-c', f'mount -t tmpfs -o ro tmpfs "$1" && exec "$2" -c "$3"', 'sh', str(tmp_path/'ro'), sys.executable, code]
    else:
        (tmp_path/'ro').chmod(0o555)
        cmd = [sys.executable, '-c', code]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and r.stdout == 'status 1\n' and r.stderr.count('--- load_mnist\n') == 1, (r.stdout, r.stderr)
    fit, load = r.stderr.split('--- load_mnist\n')
    assert fit.count('\n') == 1 and 'Cannot write to the data folder' in fit, fit
    assert 'Cannot write to the data folder' in load and ro in load, load

def test_downloads_are_readable_by_the_folders_other_users(site, tmp_path):
    old = os.umask(0o022)
    try: download_mnist(tmp_path/'c', [site + '/good/'], files=FILES)
    finally: os.umask(old)
    assert sorted(stat.S_IMODE(p.stat().st_mode) for p in (tmp_path/'c').iterdir()) == [0o644] * 4   # not mkstemp's 0600

def test_a_full_disk_is_said_once_and_no_other_mirror_is_tried(site, tmp_path):
    "A real full disk: a 64 kB tmpfs in a private mount namespace, and a 300 kB file to download into it, from two mirrors."
    if os.geteuid() != 0 or not shutil.which('unshare'): pytest.skip('needs root and unshare to mount a small tmpfs')
    Handler.files['big.gz'] = big = os.urandom(300_000)
    (tmp_path/'small').mkdir()
    code = (f"from minitrain.data import download_mnist\n"
            f"download_mnist({str(tmp_path/'small'/'c')!r}, [{site + '/good/'!r}, {site + '/good/'!r}], "
            f"files={{'big.gz': {hashlib.sha256(big).hexdigest()!r}}})")
    r = subprocess.run(['unshare', '-m', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs "$1" && exec "$2" -c "$3"', 'sh',
                        str(tmp_path/'small'), sys.executable, code], capture_output=True, text=True, timeout=60)
    if 'mount:' in r.stderr: pytest.skip(f'no tmpfs could be mounted here: {r.stderr}')
    assert r.returncode != 0 and r.stderr.count('No space left on the device of') == 1, r.stderr
    assert str(tmp_path/'small'/'c') in r.stderr and 'Tried' not in r.stderr
    assert Handler.hits.count('/good/big.gz') == 1   # the second mirror was not tried
