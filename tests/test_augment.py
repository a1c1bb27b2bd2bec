"minitrain.augment: the batch transforms against the plain way, one image at a time."
import random
import pytest, torch
import torch.nn.functional as F
from minitrain.augment import RandomCrop, RandomHorizontalFlip, hflip, rand_copy, rand_erase

def windows(img, size, padding):
    "Every `size` window of `img` padded with `padding` zeros: the reference, one image at a time."
    p = F.pad(img, [padding] * 4)
    return [p[..., i:i + size[0], j:j + size[1]] for i in range(p.shape[-2] - size[0] + 1) for j in range(p.shape[-1] - size[1] + 1)]

@pytest.mark.parametrize('shape,size,padding', [((64, 1, 28, 28), 28, 4), ((32, 3, 9, 7), (5, 6), 0), ((16, 2, 4, 4), 4, 1), ((8, 1, 3, 3), 1, 0)])
def test_random_crop_takes_a_window_of_each_image_drawn_for_each(shape, size, padding):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    size2 = (size, size) if isinstance(size, int) else size
    out = RandomCrop(size, padding)(x)
    assert out.shape == (shape[0], shape[1], *size2)
    where = [[k for k, w in enumerate(windows(img, size2, padding)) if torch.equal(w, o)] for img, o in zip(x, out)]
    assert all(len(w) == 1 for w in where)   # random images: each crop is exactly one window of its own image
    assert len({w[0] for w in where}) > 1    # and the windows differ from image to image

def test_random_crop_refuses_a_window_larger_than_the_image():
    with pytest.raises(ValueError, match='does not fit'): RandomCrop(30, padding=0)(torch.zeros(2, 1, 28, 28))

def test_flips_one_image_at_a_time():
    torch.manual_seed(1)
    x = torch.randn(200, 3, 5, 6)
    out = RandomHorizontalFlip(0.3)(x)
    flipped = [torch.equal(o, torch.stack([torch.stack([row.flip(0) for row in ch]) for ch in img])) for o, img in zip(out, x)]
    kept = [torch.equal(o, img) for o, img in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept)) and 30 <= sum(flipped) <= 90   # each either mirrored or not; about 60
    assert torch.equal(hflip(x), x[..., torch.arange(5, -1, -1)])
    assert torch.equal(RandomHorizontalFlip(0.)(x), x) and torch.equal(RandomHorizontalFlip(1.)(x), hflip(x))

def test_rand_copy_copies_one_rectangle_onto_another(monkeypatch):
    x = torch.arange(2 * 1 * 10 * 10.).view(2, 1, 10, 10)
    draws = iter([1, 0.5, 0.0, 0.25, 0.875])   # one rectangle, 2 pixels (20% of 10); places in [0, 8): to (4, 0), from (2, 7)
    monkeypatch.setattr(random, 'randint', lambda a, b: next(draws))
    monkeypatch.setattr(random, 'random', lambda: next(draws))
    want = x.clone()
    want[..., 4:6, 0:2] = x[..., 2:4, 7:9]
    assert torch.equal(rand_copy(x.clone(), pct=0.2), want)

def test_rand_erase_keeps_the_batch_range_and_changes_in_place():
    random.seed(0); torch.manual_seed(0)
    x = torch.rand(4, 1, 20, 20) * 3 - 1
    y = x.clone()
    out = rand_erase(y, pct=0.3, max_num=4)
    assert out is y and y.min() >= x.min() and y.max() <= x.max()
