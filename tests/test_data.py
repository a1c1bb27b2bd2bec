"Loading MNIST from files made here: IDX, pickle, and what happens when they are wrong."
import gzip, os, pickle
import numpy as np, pytest, torch
from minitrain.data import load_mnist, load_pickle, read_idx, DownloadError, MNISTFileError, ENV_VAR

def test_idx_layout(mnist_dir):
    (x, y), (xv, yv), (xt, yt) = load_mnist(mnist_dir, n_valid=10)
    assert x.shape == (20, 784) and xv.shape == (10, 784) and xt.shape == (5, 784)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    raw = read_idx(mnist_dir/'mnist'/'train-images-idx3-ubyte.gz', 3).reshape(30, 784)
    assert torch.equal(torch.cat([x, xv]) * 256, torch.tensor(raw).float())

def test_env_var_is_used(mnist_dir, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(mnist_dir))
    assert load_mnist(n_valid=10)[0][0].shape == (20, 784)

def test_pickle_round_trip(tmp_path):
    splits = tuple((np.random.rand(n, 784).astype(np.float32), np.arange(n) % 10) for n in (4, 2, 2))
    with gzip.open(tmp_path/'mnist.pkl.gz', 'wb') as f: pickle.dump(splits, f, protocol=2)
    got = load_mnist(tmp_path)
    for (x, y), (gx, gy) in zip(splits, got):
        assert np.array_equal(x, gx.numpy()) and np.array_equal(y, gy.numpy())

class Hostile:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))

def test_hostile_pickle_never_runs(tmp_path):
    marker = tmp_path/'pwned'
    with gzip.open(tmp_path/'mnist.pkl.gz', 'wb') as f: pickle.dump(Hostile(marker), f)
    with pytest.raises(MNISTFileError, match='refusing to load'): load_pickle(tmp_path/'mnist.pkl.gz')
    assert not marker.exists()

def test_offline_error_names_folder_env_and_urls(tmp_path):
    urls = ['http://127.0.0.1:9/a/', 'http://127.0.0.1:9/b/']
    with pytest.raises(DownloadError) as e: load_mnist(tmp_path, mirrors=urls)
    msg = str(e.value)
    assert str(tmp_path) in msg and ENV_VAR in msg
    assert all(u + 'train-images-idx3-ubyte.gz' in msg for u in urls)
    assert not (tmp_path/'mnist').exists()   # nothing half-written, and not the folder it made either
    assert msg.startswith(f"MNIST is not in {tmp_path} and could not be downloaded: put its four IDX files in")

def test_damaged_pickle_names_the_file(tmp_path):
    splits = tuple((np.zeros((n, 784), np.float32), np.arange(n)) for n in (4, 2, 2))
    with gzip.open(tmp_path/'mnist.pkl.gz', 'wb') as f: pickle.dump(splits, f, protocol=2)
    good = (tmp_path/'mnist.pkl.gz').read_bytes()
    (tmp_path/'mnist.pkl.gz').write_bytes(good[:len(good)//2])
    with pytest.raises(MNISTFileError, match='mnist.pkl.gz could not be read'): load_mnist(tmp_path)

def test_pickle_of_the_wrong_shape_is_refused(tmp_path):
    with gzip.open(tmp_path/'mnist.pkl.gz', 'wb') as f: pickle.dump((np.zeros((3, 28, 28), np.float32), np.arange(3)), f, protocol=2)
    with pytest.raises(MNISTFileError, match=r'does not hold \(\(x_train'): load_mnist(tmp_path)
