"""minitrain.datasets: collate_dict and DataLoaders.from_dd on real Hugging Face datasets; and a package that works
without the `datasets` library (the course's names: tests/test_course.py)."""
import subprocess, sys
import numpy as np, pytest, torch
from PIL import Image as PILImage
from minitrain.datasets import to_tensor, as_tensors, collate_dict, inplace, DataLoaders

def test_the_star_import_shadows_no_pytorch_name():
    ns = {}
    exec('from minitrain.datasets import *', ns)
    assert not (set(ns) - {'__builtins__'}) & (set(dir(torch)) | set(dir(torch.nn)) | set(dir(torch.utils.data)))

datasets = pytest.importorskip('datasets')

def dataset(n=10, order=('image', 'label'), rgb=False):
    rng = np.random.default_rng(0)
    shape = (5, 7, 3) if rgb else (5, 7)
    cols = {'image': [PILImage.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in range(n)],
            'label': [i % 10 for i in range(n)]}
    feats = {'image': datasets.Image(), 'label': datasets.ClassLabel(num_classes=10)}
    return datasets.Dataset.from_dict({k: cols[k] for k in order}, features=datasets.Features({k: feats[k] for k in order}))

@inplace
def tensors(b): b['image'] = [to_tensor(o) for o in b['image']]

def test_collate_dict_follows_the_order_of_the_features():
    for order in [('image', 'label'), ('label', 'image')]:
        ds = dataset(order=order).with_transform(tensors)
        out = collate_dict(ds)([ds[0], ds[1]])
        assert isinstance(out, tuple) and len(out) == 2
        imgs, labels = out if order[0] == 'image' else out[::-1]
        assert imgs.shape == (2, 1, 5, 7) and labels.tolist() == [0, 1]

def test_from_dd_on_a_real_datasetdict():
    dd = datasets.DatasetDict(train=dataset(100), test=dataset(30)).with_transform(tensors)
    torch.manual_seed(0)
    dls = DataLoaders.from_dd(dd, 8, drop_last=True)   # other arguments go to PyTorch's DataLoader
    assert len(dls.train) == 12 and len(dls.valid) == 1   # 100 // 8, and 30 // 16
    epochs = [torch.cat([y for _, y in dls.train]) for _ in range(2)]
    assert not torch.equal(epochs[0], epochs[1])   # the training split is shuffled each epoch
    xb, yb = next(iter(dls.valid))
    assert xb.shape == (16, 1, 5, 7) and yb.tolist() == [i % 10 for i in range(16)]   # validation in order, 2 x bs
    b = next(iter(DataLoaders.from_dd(dd, 4, as_tuple=False).train))
    assert set(b) == {'image', 'label'}
    with pytest.raises(ValueError, match='needs a training and a validation loader, got 1'): DataLoaders([1])

def test_from_dd_with_worker_processes_as_the_course_calls_it():
    "The course's lessons load with `DataLoaders.from_dd(tds, bs, num_workers=4)`: the transform and collate_dict run in workers (2 here)."
    dd = datasets.DatasetDict(train=dataset(40), test=dataset(20)).with_transform(tensors)
    def batches(**kw):
        torch.manual_seed(0)
        dls = DataLoaders.from_dd(dd, 8, **kw)
        return [b for dl in (dls.train, dls.valid) for b in dl]
    plain, workers = batches(), batches(num_workers=2)
    assert len(plain) == len(workers) == 5 + 2 and all(isinstance(b, tuple) and len(b) == 2 for b in workers)
    assert all(torch.equal(a, b) for p, w in zip(plain, workers) for a, b in zip(p, w))   # the same batches, in order

def test_to_tensor_as_torchvision_has_it():
    rgb = np.random.default_rng(1).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    for im, want in [(PILImage.fromarray(rgb), torch.from_numpy(rgb).permute(2, 0, 1) / 255),
                     (PILImage.fromarray(rgb[..., 0]), torch.from_numpy(rgb[..., 0])[None] / 255),
                     (PILImage.fromarray(np.array([[True, False]])), torch.tensor([[[1., 0.]]])),   # mode '1'
                     (np.zeros((1, 1), np.uint8) + 255, torch.ones(1, 1, 1))]:
        got = to_tensor(im)
        assert got.dtype == torch.float32 and torch.equal(got, want.float()), (got, want)
    a = np.arange(4, dtype=np.uint8).reshape(2, 2)
    to_tensor(a).add_(1)
    assert a.tolist() == [[0, 1], [2, 3]]   # the tensor is a copy: the array is left as it was

def test_as_tensors_decodes_as_to_tensor_does():
    ds = dataset(12, rgb=True)
    xs, ys = as_tensors(ds)
    assert xs.shape == (12, 3, 5, 7) and xs.dtype == torch.float32 and ys.tolist() == ds['label']
    assert torch.equal(xs, torch.stack([to_tensor(r['image']) for r in ds]))

def test_the_package_works_without_the_datasets_library():
    code = '''
import sys, pkgutil, importlib
sys.modules['datasets'] = None   # as if it were not installed
import minitrain
for m in pkgutil.iter_modules(minitrain.__path__): importlib.import_module(f'minitrain.{m.name}')
from minitrain.data import mnist_dd
try: mnist_dd()
except ImportError as e: print(e)
'''
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'mnist_dd needs the Hugging Face datasets library: pip install "minitrain[hf]"', r.stdout
