"""Checkpoints and exact resumes: the library's pieces, then `minitrain-fit --checkpoint` killed for real (SIGKILL, SIGTERM,
Ctrl-C) and resumed, a damaged newest checkpoint, refusals, and torchrun restarts. Every wait is bounded."""
import json, os, random, re, shutil, signal, stat, struct, subprocess, sys, time, zlib
from datetime import datetime
from pathlib import Path
import numpy as np, pytest, torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn
from conftest import AS_FROM_A_TERMINAL, make_mnist, once_per_run, quiet
from minitrain.training import Dataset, DataLoader, accuracy, set_seed
from minitrain.learner import Learner, DataLoaders, TrainCB, MetricsCB, Callback
from minitrain.progress import RecorderCB
from minitrain.checkpoint import (CheckpointCB, CheckpointError, DamagedCheckpoint, BackgroundWriter, RunStopped, checkpoints,
                                  find_checkpoint, read_checkpoint, rng_states, set_rng_states, snapshot, save_state, load_state,
                                  split_state, FORMAT)

CLI = [sys.executable, '-c', 'import sys; from minitrain.cli import main; sys.exit(main())']
CLI_FROM_A_TERMINAL = [*CLI[:2], AS_FROM_A_TERMINAL + CLI[2]]
TORCHRUN = [sys.executable, '-m', 'torch.distributed.run']

# ---------------------------------------------------------------- the loader's position

@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), bs=st.integers(1, 13), drop_last=st.booleans(), shuffle=st.booleans(),
       seed=st.one_of(st.none(), st.integers(0, 2**31)), stop=st.integers(0, 12), passes=st.integers(0, 2))
def test_loader_resumes_where_it_was(n, bs, drop_last, shuffle, seed, stop, passes):
    "Any loader, stopped after any batch of any pass, resumed in a new loader: the same batches follow, pass by pass."
    if drop_last and n < bs: return   # no batches at all
    ds = Dataset(torch.arange(n) * 10, torch.arange(n))
    def loader(): return DataLoader(ds, bs, shuffle=shuffle, drop_last=drop_last, seed=seed)
    torch.manual_seed(0)
    ref_dl = loader(); ref = [[y.tolist() for _, y in ref_dl] for _ in range(passes + 3)]
    torch.manual_seed(0)
    dl = loader()
    for _ in range(passes): list(dl)
    stop = min(stop, len(dl))
    it = iter(dl)
    for _ in range(stop): next(it)
    state, rng = dl.state_dict(), torch.get_rng_state()
    dl2 = loader(); dl2.load_state_dict(state); torch.set_rng_state(rng)
    first, second = [y.tolist() for _, y in dl2], [y.tolist() for _, y in dl2]
    assert first == (ref[passes][stop:] if stop < len(dl) else ref[passes + 1])   # the rest of the pass, or the next one
    assert second == ref[passes + 1 + (stop == len(dl))]

def test_seeded_pass_is_a_permutation_of_seed_plus_epoch():
    ds = Dataset(torch.arange(30), torch.arange(30))
    dl = DataLoader(ds, 30, shuffle=True, seed=7)
    for p in range(3):
        assert torch.equal(next(iter(dl))[1], torch.randperm(30, generator=torch.Generator().manual_seed(7 + p)))
    assert torch.equal(next(iter(DataLoader(ds, 30)))[1], torch.arange(30))   # unshuffled: in order, as ever

def test_skipped_batches_are_not_fetched():
    fetched = []
    class Counting(Dataset):
        def __getitem__(self, i): fetched.append(i); return super().__getitem__(i)
    dl = DataLoader(Counting(torch.arange(100), torch.arange(100)), 10, shuffle=True, seed=0)
    dl.load_state_dict({'epoch': 0, 'batch': 7})
    assert len(list(dl)) == 3 and len(fetched) == 30

def test_loader_with_workers_resumes():
    ds = Dataset(torch.arange(40.), torch.arange(40))
    ref = [y for _, y in DataLoader(ds, 6, shuffle=True, seed=3)]
    dl = DataLoader(ds, 6, shuffle=True, seed=3, num_workers=2)
    dl.load_state_dict({'epoch': 0, 'batch': 4})
    assert [y.tolist() for _, y in dl] == [y.tolist() for y in ref[4:]]

# ---------------------------------------------------------------- generators, copies, files

def test_rng_state_survives_a_weights_only_load(tmp_path):
    import numpy as np
    random.random(); np.random.rand(); torch.rand(1)
    torch.save(rng_states(), tmp_path/'rng.pt')
    want = (random.random(), np.random.rand(5).tolist(), torch.rand(5).tolist(), torch.randn(3).tolist())
    set_rng_states(torch.load(tmp_path/'rng.pt', weights_only=True))
    assert (random.random(), np.random.rand(5).tolist(), torch.rand(5).tolist(), torch.randn(3).tolist()) == want

def test_snapshot_shares_no_memory():
    w = torch.ones(4); opt_like = {'state': {0: {'buf': w}}, 'groups': [{'lr': 0.1, 'betas': (0.9, 0.99), 'params': [0]}]}
    s = snapshot(opt_like); w.mul_(3); opt_like['groups'][0]['params'].append(1)
    assert s['state'][0]['buf'].tolist() == [1.] * 4 and s['groups'][0] == {'lr': 0.1, 'betas': (0.9, 0.99), 'params': [0]}

def test_background_writer_raises_a_failed_write_later(tmp_path):
    bw = BackgroundWriter()
    def fail(): raise OSError('disk full')
    bw.submit(fail)
    with pytest.raises(OSError, match='disk full'): bw.submit(lambda: None)
    bw.wait()   # the error was raised once, and the writer goes on

def test_read_checkpoint_refusals(tmp_path):
    torch.save({'format': 1, 'model': {}}, tmp_path/'ok.pt')   # format 1, torch.save's, still read
    assert read_checkpoint(tmp_path/'ok.pt')['format'] == 1
    save_state(tmp_path/'ok.safetensors', {'format': FORMAT, 'model': {'w': torch.ones(2)}})
    assert read_checkpoint(tmp_path/'ok.safetensors')['format'] == FORMAT == 2
    for write in (save_state, lambda fn, state: torch.save(state, fn)):
        write(tmp_path/'new', {'format': 3, 'model': {}})
        with pytest.raises(CheckpointError, match='format 3, newer than 2') as e: read_checkpoint(tmp_path/'new')
        assert not isinstance(e.value, DamagedCheckpoint) and e.value.key == 'format'
    (tmp_path/'cut.pt').write_bytes((tmp_path/'ok.pt').read_bytes()[:40])
    for bad in ('cut.pt',):
        with pytest.raises(DamagedCheckpoint, match='cannot be read'): read_checkpoint(tmp_path/bad)
    class Evil:
        def __reduce__(self): return (os.system, ('echo ran',))
    torch.save({'format': 1, 'model': Evil()}, tmp_path/'evil.pt')
    with pytest.raises(DamagedCheckpoint): read_checkpoint(tmp_path/'evil.pt')   # weights_only: refused, never run

# ---------------------------------------------------------------- the callback, in this process

def small_run(folder=None, cbs=(), epochs=3, every=5, loader=DataLoader, **kw):
    set_seed(0)
    x = torch.randn(300, 12); y = (x[:, 0] + x[:, 1] > 0).long()
    dls = DataLoaders(loader(Dataset(x, y), 16, shuffle=True), loader(Dataset(x, y), 64))
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    rec = RecorderCB()
    extra = [CheckpointCB(folder, every=every, **kw)] if folder else []
    learn = Learner(model, dls, F.cross_entropy, 0.1, cbs=[TrainCB(), MetricsCB(accuracy=accuracy), rec, *extra, *cbs],
                    opt_func=lambda ps, lr: torch.optim.SGD(ps, lr, momentum=0.9))
    return learn, rec

class Crash(Exception): pass
class CrashCB(Callback):
    order = 200   # after the checkpoint callback: the batch it saved is the last one done
    def __init__(self, n): self.n, self.seen = n, 0
    def after_batch(self, learn):
        self.seen += learn.model.training
        if self.seen == self.n: raise Crash()

def params(learn): return [p.detach().clone() for p in learn.model.parameters()]

@pytest.mark.parametrize('n', [1, 5, 19, 20, 21, 38, 40, 57])
def test_crash_anywhere_resumes_exactly(tmp_path, n):
    ref, rec0 = small_run(); row = ref.fit(3)
    learn, _ = small_run(tmp_path, [CrashCB(n)])
    with pytest.raises(Crash): learn.fit(3)
    learn, rec = small_run(tmp_path)
    assert learn.fit(3) == pytest.approx(row)
    assert all(torch.equal(a, b) for a, b in zip(params(learn), params(ref)))
    assert rec.losses == rec0.losses and [v[0] for v in rec.valid] == [v[0] for v in rec0.valid]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ['epoch2-batch15.safetensors', 'epoch3-batch0.safetensors'], names   # the newest two, nothing else

class Draws(Callback):
    "Draws from Python's and numpy's generators after each training batch, as an augmentation might."
    def __init__(self): self.seen = []
    def after_batch(self, learn):
        if learn.model.training: self.seen.append((random.random(), np.random.rand(20).tolist()))   # numpy's key moves every 624 words

def test_python_and_numpy_generators_that_move_resume_exactly(tmp_path):
    "Their states change between checkpoints, and each checkpoint holds its own: a resume continues their draws."
    ref = Draws(); small_run(cbs=[ref])[0].fit(2)
    learn, _ = small_run(tmp_path, [Draws(), CrashCB(27)])   # after batch 8 of epoch 1: its checkpoint is batch 5's
    with pytest.raises(Crash): learn.fit(2)
    again = Draws(); small_run(tmp_path, [again])[0].fit(2)   # small_run seeds them anew: the resume must put them back
    assert len(again.seen) == 19 - 5 and again.seen == ref.seen[-len(again.seen):]

def test_keep_and_finished_run_and_extension(tmp_path):
    learn, _ = small_run(tmp_path, keep=3); learn.fit(2)
    assert [c[:2] for c in checkpoints(tmp_path)] == [(1, 10), (1, 15), (2, 0)]   # 19 batches an epoch: 5, 10, 15, then the end
    learn, _ = small_run(tmp_path); row = learn.fit(2)   # finished: nothing to train, the same last row
    assert row['epoch'] == 1 and not row['train']
    with pytest.raises(CheckpointError, match='past epoch 1'): small_run(tmp_path)[0].fit(1)

def test_damaged_newest_is_passed_over_and_moved_aside(tmp_path, capsys):
    ref, _ = small_run(); ref.fit(3)
    learn, _ = small_run(tmp_path, [CrashCB(33)])
    with pytest.raises(Crash): learn.fit(3)
    newest = checkpoints(tmp_path)[-1][-1]
    assert newest.name == 'epoch1-batch10.safetensors'   # batch 33 is batch 14 of epoch 1; the last multiple of 5 before it
    newest.write_bytes(newest.read_bytes()[:100])
    learn, _ = small_run(tmp_path, every=7)   # another spacing: the damaged file's position is not written again
    learn.fit(3)
    err = capsys.readouterr().err
    assert err.count(str(newest)) == 1 and 'continuing from the one before it' in err
    assert all(torch.equal(a, b) for a, b in zip(params(learn), params(ref)))
    assert (tmp_path/f'.{newest.name}.abandoned').exists() and not newest.exists()

def test_refusals_before_training(tmp_path):
    learn, _ = small_run(tmp_path, config={'lr': 0.1}); learn.fit(1)
    with pytest.raises(CheckpointError, match=r"lr=0.1, not 0.2") as e: small_run(tmp_path, config={'lr': 0.2})[0].fit(2)
    assert e.value.key == 'lr'
    set_seed(0)
    other = Learner(nn.Linear(12, 2), small_run()[0].dls, cbs=[TrainCB(), CheckpointCB(tmp_path, config={'lr': 0.1})])
    with pytest.raises(CheckpointError, match='another model'): other.fit(2)
    with pytest.raises(ValueError, match='needs a training loader that can say where it is'):
        small_run(tmp_path/'t', loader=torch.utils.data.DataLoader)[0].fit(1)

class AskStop(Callback):
    "Ask `learn`'s CheckpointCB to stop, as SIGTERM does, after training batch `batch` (from 0) of `epoch`."
    order = 50
    def __init__(self, learn, epoch, batch):
        self.ck, self.epoch, self.batch = next(cb for cb in learn.cbs if isinstance(cb, CheckpointCB)), epoch, batch
    def after_batch(self, learn):
        if learn.model.training and learn.epoch == self.epoch and learn.iter == self.batch: self.ck.stop = 'SIGTERM'

def test_stop_request_writes_then_raises(tmp_path):
    ref, _ = small_run(); ref.fit(3)
    learn, _ = small_run(tmp_path)
    with pytest.raises(RunStopped) as e: learn.fit(3, cbs=AskStop(learn, epoch=1, batch=2))
    assert e.value.path.name == 'epoch1-batch3.safetensors' and e.value.reason == 'SIGTERM' and e.value.path.exists()
    learn, _ = small_run(tmp_path); learn.fit(3)
    assert all(torch.equal(a, b) for a, b in zip(params(learn), params(ref)))

def test_last_batch_of_an_epoch(tmp_path):
    "A stop asked for, or a crash, right after a pass's last batch: resumed from the epoch's end, exactly."
    ref, _ = small_run(); ref.fit(3)
    learn, _ = small_run(tmp_path, every=19)   # 19 batches an epoch: the last is a multiple of every
    with pytest.raises(RunStopped) as e: learn.fit(3, cbs=AskStop(learn, epoch=1, batch=18))
    assert e.value.path.name == 'epoch2-batch0.safetensors'   # after the validation, not at batch 19
    assert [c[:2] for c in checkpoints(tmp_path)] == [(1, 0), (2, 0)]
    learn, _ = small_run(tmp_path/'b', [CrashCB(38)], every=19)   # after epoch 1's last batch, before its validation
    with pytest.raises(Crash): learn.fit(3)
    assert [c[:2] for c in checkpoints(tmp_path/'b')] == [(1, 0)]
    learn, _ = small_run(tmp_path/'b', every=19); learn.fit(3)
    assert all(torch.equal(a, b) for a, b in zip(params(learn), params(ref)))

def test_learn_save_load(tmp_path):
    learn, _ = small_run(); learn.fit(1)
    learn.save(tmp_path/'m.safetensors')
    state = read_checkpoint(tmp_path/'m.safetensors')
    assert sorted(state) == ['format', 'model', 'opt']
    other, _ = small_run(); other.load(tmp_path/'m.safetensors')
    assert all(torch.equal(a, b) for a, b in zip(params(other), params(learn)))
    seen = {}
    class Look(Callback):
        order = 50
        def before_fit(self, learn): seen.update(lr=learn.opt.param_groups[0]['lr'], bufs=len(learn.opt.state))
    other.fit(1, lr=0.05, cbs=Look())
    assert seen == {'lr': 0.05, 'bufs': 4}   # momentum restored, the fit's own rate kept
    with pytest.raises(CheckpointError, match='another model'):
        Learner(nn.Linear(3, 2), learn.dls, cbs=TrainCB()).load(tmp_path/'m.safetensors')

def test_find_checkpoint_on_empty_and_missing_folders(tmp_path):
    assert find_checkpoint(tmp_path) == (None, None) and find_checkpoint(tmp_path/'no') == (None, None)

# ---------------------------------------------------------------- the format: safetensors, checked before use

def same_state(a, b):
    "Is `b` `a`: tensor for tensor (dtype, shape, bits), value for value, with the same containers?"
    if torch.is_tensor(a): return torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict): return type(b) is dict and list(a) == list(b) and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return type(a) is type(b) and len(a) == len(b) and all(map(same_state, a, b))
    return type(a) is type(b) and (a == b or a != a and b != b)

def test_a_checkpoint_is_safetensors_that_the_library_reads(tmp_path):
    safetensors = pytest.importorskip('safetensors')
    from safetensors.torch import load_file
    learn, _ = small_run(tmp_path, [CrashCB(23)])
    with pytest.raises(Crash): learn.fit(3)
    fn = checkpoints(tmp_path)[-1][-1]
    assert fn.suffix == '.safetensors'
    tensors = load_file(fn)   # Hugging Face's reader: it runs no code, and checks the layout its own way
    mine = {}
    split_state(read_checkpoint(fn), mine)
    assert sorted(tensors) == sorted(mine) and all(torch.equal(tensors[k], v) and tensors[k].dtype == v.dtype for k, v in mine.items())
    with safetensors.safe_open(fn, 'pt') as f: meta = f.metadata()
    raw = fn.read_bytes(); n = struct.unpack('<Q', raw[:8])[0]
    assert json.loads(meta['minitrain'])['epoch'] == 1 and meta['crc32'] == str(zlib.crc32(raw[8 + n:]))

def test_every_kind_of_state_comes_back_as_it_went(tmp_path):
    opt = torch.optim.AdamW(nn.Linear(3, 2).parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    opt.param_groups[0]['params'][0].grad = torch.ones(2, 3); opt.param_groups[0]['params'][1].grad = torch.ones(2)
    opt.step(); sched.step()
    state = {'format': FORMAT, 'model': {}, 'opt': opt.state_dict(), 'sched': sched.state_dict(), 'rng': rng_states(),
             'odd': {(1, 2): 'tuple key', 3: None, '@at': [True, 2**62, 5e-324, float('nan'), float('-inf'), 'é']},
             'tensors': [torch.empty(0, 3), torch.ones(2, dtype=torch.bfloat16), torch.tensor(True), torch.arange(3, dtype=torch.int8)]}
    save_state(tmp_path/'s', state)
    assert same_state(state, load_state(tmp_path/'s'))
    with pytest.raises(TypeError, match='state/x is a ndarray'):
        import numpy as np; save_state(tmp_path/'t', {'x': np.zeros(2)})
    assert not (tmp_path/'t').exists() and [p.name for p in tmp_path.iterdir()] == ['s']   # nothing half-written

def write_raw(fn, head, data):
    "A safetensors file with the header `head` (a dict) and the bytes `data`."
    h = json.dumps(head).encode()
    fn.write_bytes(struct.pack('<Q', len(h)) + h + data)

def test_bad_files_each_get_one_line_naming_the_file(tmp_path):
    learn, _ = small_run(); learn.fit(1)
    good = tmp_path/'good.safetensors'; learn.save(good)
    raw = good.read_bytes(); n = struct.unpack('<Q', raw[:8])[0]
    head, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    names = [k for k in head if k != '__metadata__']
    a, b = names[0], names[1]
    def changed(f): h = json.loads(json.dumps(head)); f(h); return h
    def shift(h, k, by): h[k]['data_offsets'] = [o + by for o in h[k]['data_offsets']]
    size = lambda k: head[k]['data_offsets'][1] - head[k]['data_offsets'][0]
    cases = {
        'cut short: 5 bytes': lambda fn: fn.write_bytes(raw[:5]),
        'cut short inside its header': lambda fn: fn.write_bytes(raw[:n // 2]),
        'the header is 999999 bytes': lambda fn: fn.write_bytes(struct.pack('<Q', 999_999) + raw[8:]),
        'cut short inside its data': lambda fn: fn.write_bytes(raw[:-10]),
        'it is not JSON': lambda fn: fn.write_bytes(raw[:8] + b'[' * n + data),
        'overlap': lambda fn: write_raw(fn, changed(lambda h: h[b].update(data_offsets=[h[a]['data_offsets'][0], h[a]['data_offsets'][0] + size(b)])), data),
        f'{a} ends at byte': lambda fn: write_raw(fn, changed(lambda h: shift(h, a, len(data))), data),
        'but its offsets': lambda fn: write_raw(fn, changed(lambda h: h[a]['shape'].append(2)), data),
        'no dtype': lambda fn: write_raw(fn, changed(lambda h: h[a].update(dtype='C64')), data),
        'no shape': lambda fn: write_raw(fn, changed(lambda h: h[a].update(shape=[-1])), data),
        'no data offsets': lambda fn: write_raw(fn, changed(lambda h: h[a].update(data_offsets=[5, 2])), data),
        'bytes after its tensors': lambda fn: fn.write_bytes(raw + b'extra'),
        'do not match their checksum': lambda fn: fn.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1])),
        'holds no state': lambda fn: write_raw(fn, changed(lambda h: h['__metadata__'].pop('minitrain')), data),
        'state does not parse': lambda fn: write_raw(fn, changed(lambda h: h['__metadata__'].update(minitrain='{"@tensor": "none"}')), data),
        'its state does not parse': lambda fn: write_raw(fn, changed(lambda h: h['__metadata__'].update(minitrain='[' * 100_000)), data),
    }
    before = params(learn)
    for words, make in cases.items():
        fn = tmp_path/'bad.safetensors'; make(fn)
        with pytest.raises(DamagedCheckpoint) as e: learn.load(fn)
        msg = str(e.value)
        assert msg.startswith(str(fn)) and words in msg and '\n' not in msg, (words, msg)
        assert all(torch.equal(x, y) for x, y in zip(params(learn), before))   # nothing loaded
    other, _ = small_run(); other.model.double()   # the same names and shapes, another dtype
    with pytest.raises(CheckpointError, match=r"another model: its 0.weight is torch.float32, this model's torch.float64"):
        other.load(good)

def test_format_1_checkpoints_still_resume_exactly(tmp_path):
    "A run checkpointed by an older minitrain (torch.save, `.pt`) resumes from it, bit for bit, and goes on in the new format."
    ref, _ = small_run(); ref.fit(3)
    learn, _ = small_run(tmp_path, [CrashCB(27)])
    with pytest.raises(Crash): learn.fit(3)
    for *_, fn in checkpoints(tmp_path):   # each made as format 1 made it
        state = read_checkpoint(fn); state['format'] = 1
        torch.save(state, fn.with_suffix('.pt')); fn.unlink()
    assert [c[-1].suffix for c in checkpoints(tmp_path)] == ['.pt', '.pt']
    learn, _ = small_run(tmp_path); learn.fit(3)
    assert all(torch.equal(a, b) for a, b in zip(params(learn), params(ref)))
    assert [c[-1].name for c in checkpoints(tmp_path)] == ['epoch2-batch15.safetensors', 'epoch3-batch0.safetensors']

def test_checkpoints_are_flushed_at_epoch_ends_stops_and_every_sync_every_seconds(tmp_path, monkeypatch):
    synced, folders = [], []
    real = os.fsync
    def fsync(fd):   # a file's flush, and its folder's (the rename, after it), counted apart
        (synced if stat.S_ISREG(os.fstat(fd).st_mode) else folders).append(fd)
        real(fd)
    monkeypatch.setattr(os, 'fsync', fsync)
    learn, _ = small_run(tmp_path, epochs=2, keep=1); learn.fit(2)   # 19 batches an epoch: saves after 5, 10, 15 and the end
    assert len(synced) == 3   # the first, and the two epoch ends
    assert len(folders) == (3 if hasattr(os, 'O_DIRECTORY') else 0)   # each flushed one's rename too
    assert [c[:2] for c in checkpoints(tmp_path)] == [(2, 0)]
    shutil.rmtree(tmp_path); synced.clear()
    cb = CheckpointCB(tmp_path, every=5, keep=1)
    learn, _ = small_run(cbs=[cb, CrashCB(30)])
    with pytest.raises(Crash): learn.fit(3)
    assert len(synced) == 2 and [c[:2] for c in checkpoints(tmp_path)] == [(1, 0), (1, 10)]   # the newest, and the newest flushed
    cb.sync_every = 0; shutil.rmtree(tmp_path); synced.clear()
    learn, _ = small_run(cbs=[cb]); learn.fit(1)
    assert len(synced) == 4 and [c[:2] for c in checkpoints(tmp_path)] == [(1, 0)]

def test_a_new_checkpoint_is_written_over_one_it_makes_surplus(tmp_path):
    "Each checkpoint that makes others surplus goes into one of their files, renamed, not a new file: no pages to find."
    seen = []
    class Look(Callback):
        order = 200
        def after_batch(self, learn): self.look()
        def after_epoch(self, learn): self.look()
        def look(self):
            cb.writer.wait()
            now = {f.name: f.stat().st_ino for f in tmp_path.iterdir()}
            if not seen or now != seen[-1]: seen.append(now)
    cb = CheckpointCB(tmp_path, every=5, keep=2)
    learn, _ = small_run(cbs=[cb, Look()]); learn.fit(2)
    written_over = 0
    for before, after in zip(seen, seen[1:]):
        (new,) = set(after) - set(before)
        if gone := set(before) - set(after):   # a fresh file is made while they are all still there: a new inode
            assert after[new] in {before[f] for f in gone}, (before, after)
            written_over += 1
    assert written_over == 4, seen   # of 8 saves: not the first two, nor two that keep the flushed one

@pytest.mark.parametrize('keep, n, left', [(1, 3, [5, 10]), (2, 4, [10, 15])])
def test_a_failed_write_leaves_the_newest_checkpoint(tmp_path, monkeypatch, keep, n, left):
    "A write that fails half-way loses at most the file it was written over, never the newest."
    import minitrain.checkpoint as C
    real, calls = C.write_layout, []
    def write_layout(fn, layout, meta):
        calls.append(fn)
        if len(calls) == n: Path(fn).write_bytes(b'half a file'); raise OSError('the disk is full')
        real(fn, layout, meta)
    monkeypatch.setattr(C, 'write_layout', write_layout)
    learn, _ = small_run(tmp_path, keep=keep)   # 19 batches an epoch: saves after 5 (flushed), 10, 15, then its end
    with pytest.raises(OSError, match='the disk is full'): learn.fit(2)
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(f'epoch0-batch{b}.safetensors' for b in left)
    assert read_checkpoint(tmp_path/f'epoch0-batch{max(left)}.safetensors')['batch'] == max(left)

# ---------------------------------------------------------------- the command line, killed for real

@pytest.fixture(scope='module')
def mnist(tmp_path_factory):
    """20,000 images to train on (and 10,000 to validate): 400 batches an epoch of 50 in one process, or of 25 in each of
    two under torchrun."""
    return make_mnist(tmp_path_factory.mktemp('data'), n_train=30_000, n_test=1_000)

def fit_args(mnist, *more, epochs=2): return ['--data', str(mnist), '--epochs', str(epochs), '--shuffle', '--device', 'cpu', *more]

def run_fit(*args, timeout=120, **kw):
    "`minitrain-fit` in a Python of its own, as the kill tests need."
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)

def start(*args, cmd=CLI):
    return subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

def wait_for_batch(folder, p, batch, epoch=0, timeout=60):
    "Wait until `folder` holds a checkpoint at or past `batch` of `epoch`: the run's progress decides, not the clock."
    t = time.monotonic()
    while not (found := checkpoints(folder)) or tuple(found[-1][:2]) < (epoch, batch):
        assert p.poll() is None, p.communicate()
        assert time.monotonic() - t < timeout, f'no checkpoint at epoch {epoch}, batch {batch} appeared'
        time.sleep(0.01)

def kill_point(folder, p, points=((0, 50), (0, 200), (1, 50), (1, 200))):
    """Wait for one of `points` (epoch, batch), drawn at random, then up to 0.05 s more: a signal sent then lands at a
    batch between the first checkpoint and about 150 batches before the end, however fast the machine."""
    epoch, batch = random.choice(points)
    wait_for_batch(folder, p, batch, epoch)
    time.sleep(random.uniform(0, 0.05))

def same_tensors(a, b):
    a, b = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    return sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)

def accuracy_of(out): return [l for l in out.splitlines() if l.startswith('accuracy ')]

@pytest.fixture(scope='module')
def reference(mnist, tmp_path_factory):
    """The uninterrupted run, once for all the workers, in the process that makes it: the same weights, bit for bit, as
    in a Python of its own, 1 to 2 s sooner. (Each worker's `mnist` holds the same images.)"""
    from minitrain.cli import main
    def make(folder):
        status, out = quiet(main, fit_args(mnist, '--save', str(folder/'A.pt')))
        assert status == 0, out
        (folder/'accuracy').write_text(json.dumps(accuracy_of(out)))
    folder = once_per_run(tmp_path_factory, 'checkpoint-reference', make)
    return folder/'A.pt', json.loads((folder/'accuracy').read_text())

def visible(folder): return sorted(f.name for f in folder.iterdir() if not f.name.startswith('.'))

def test_sigkill_then_resume_is_exact(mnist, reference, tmp_path):
    d, b = tmp_path/'D', tmp_path/'B.pt'
    p = start(*fit_args(mnist, '--checkpoint', str(d), '--checkpoint-every', '50', '--save', str(b)))
    kill_point(d, p)
    os.killpg(p.pid, signal.SIGKILL); p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL, 'the run ended before it was killed: nothing was tested'
    assert all(re.fullmatch(r'epoch\d+-batch\d+\.safetensors', n) for n in visible(d)) and not b.exists()
    t0 = time.monotonic()
    r = run_fit(*fit_args(mnist, '--checkpoint', str(d), '--checkpoint-every', '50', '--save', str(b)))
    assert r.returncode == 0, r.stderr
    assert re.search(r'^minitrain-fit: resuming from epoch \d+, batch \d+$', r.stderr, re.M), r.stderr
    assert same_tensors(b, reference[0]) and accuracy_of(r.stdout) == reference[1]
    assert visible(d) == ['epoch1-batch350.safetensors', 'epoch2-batch0.safetensors']
    print(f'resumed run: {time.monotonic() - t0:.1f}s')

@pytest.mark.parametrize('sig,status', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_write_a_checkpoint_and_exit(mnist, reference, tmp_path, sig, status, cli):
    "The signal goes to a real process; the resume runs in this one (the SIGKILL test resumes in a new Python)."
    d, b = tmp_path/'D', tmp_path/'B.pt'
    p = start(*fit_args(mnist, '--checkpoint', str(d), '--checkpoint-every', '50', '--save', str(b)), cmd=CLI_FROM_A_TERMINAL)
    kill_point(d, p)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == status, err
    assert err.count('\n') == 1 and 'run the same command to continue' in err and 'Traceback' not in err, err
    saved = Path(re.search(r'saved in (\S+):', err)[1])
    assert saved.exists() and saved == checkpoints(d)[-1][-1]
    r = cli(*fit_args(mnist, '--checkpoint', str(d), '--checkpoint-every', '50', '--save', str(b)))
    assert r.returncode == 0, r.stderr
    assert same_tensors(b, reference[0]) and accuracy_of(r.stdout) == reference[1]

def test_damaged_newest_checkpoint_on_the_command_line(mnist, reference, tmp_path, cli):
    d, b = tmp_path/'D', tmp_path/'B.pt'
    p = start(*fit_args(mnist, '--checkpoint', str(d), '--checkpoint-every', '50', '--save', str(b)))
    wait_for_batch(d, p, 100)   # two checkpoints
    os.killpg(p.pid, signal.SIGKILL); p.communicate(timeout=30)
    newest = checkpoints(d)[-1][-1]
    newest.write_bytes(newest.read_bytes()[:5000])
    r = cli(*fit_args(mnist, '--checkpoint', str(d), '--checkpoint-every', '50', '--save', str(b)))
    assert r.returncode == 0, r.stderr
    warning = [l for l in r.stderr.splitlines() if 'warning' in l]
    assert len(warning) == 1 and str(newest) in warning[0], r.stderr
    assert same_tensors(b, reference[0]) and accuracy_of(r.stdout) == reference[1]

def test_refusals_on_the_command_line(mnist, tmp_path, cli):
    "What a checkpoint folder refuses, in this process: each refusal is one line and status 2, before any training."
    d = tmp_path/'D'
    def small(epochs, *more): return cli('--data', str(mnist), '--epochs', str(epochs), '--bs', '500', '--device', 'cpu',
                                         '--checkpoint', str(d), *more)
    assert small(1).returncode == 0
    for more, words in [(['--lr', '0.1'], 'argument --lr: '), (['--shuffle'], 'argument --shuffle: '), (['--nh', '20'], 'argument --nh: '),
                        (['--seed', '2'], 'argument --seed: '), (['--opt', 'adam'], 'argument --opt: '),
                        (['--model', 'cnn'], 'argument --model: ')]:
        r = small(1, *more)
        assert r.returncode == 2 and r.stderr.count('\n') == 1 and words in r.stderr and r.stdout == '', (more, r.stderr)
    torch.save({'format': 99, 'model': {}}, d/'epoch7-batch0.pt')   # format 1's kind of file, of a newer format
    r = small(9)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'format 99' in r.stderr, r.stderr
    (d/'epoch7-batch0.pt').unlink()
    r = cli('--checkpoint-every', '5', '--data', str(mnist))
    assert r.returncode == 2 and '--checkpoint-every' in r.stderr
    (tmp_path/'f').write_text('')
    r = cli('--checkpoint', str(tmp_path/'f'), '--data', str(mnist))
    assert r.returncode == 2 and 'is a file' in r.stderr
    r = small(3)   # a finished run, extended: --epochs may differ (no 1cycle here)
    assert r.returncode == 0 and 'resuming from epoch 1, batch 0' in r.stderr, r.stderr

def test_onecycle_total_is_configuration(mnist, tmp_path, cli):
    d = tmp_path/'D'
    small = ['--data', str(mnist), '--bs', '500', '--device', 'cpu', '--sched', 'onecycle', '--checkpoint', str(d)]
    assert cli(*small, '--epochs', '1').returncode == 0
    r = cli(*small, '--epochs', '2')
    assert r.returncode == 2 and 'argument --epochs:' in r.stderr, r.stderr

# ---------------------------------------------------------------- torchrun: restarts and other world sizes

def children(pid):
    "The processes whose parent is `pid`."
    kids = []
    for s in Path('/proc').glob('[0-9]*/stat'):
        try: fields = s.read_text().rsplit(')', 1)[1].split()
        except OSError: continue
        if int(fields[1]) == pid: kids.append(int(s.parent.name))
    return kids

def torchrun(form, *more):
    "torchrun with two processes on this machine, running `minitrain-fit` in either form a user may write."
    if form == 'no-python':
        exe = shutil.which('minitrain-fit') or str(Path(sys.executable).parent/'minitrain-fit')
        prog = ['--no-python', exe]
    else: prog = ['-m', 'minitrain.cli']
    return [*TORCHRUN, '--standalone', '--nproc-per-node', '2', *more, *prog]

@pytest.fixture(scope='module')
def torchrun_reference(mnist, tmp_path_factory):
    "The uninterrupted two-process run, once for both forms' restarts, whichever workers run them."
    def make(folder):
        r = subprocess.run([*torchrun('module'), *fit_args(mnist, '--save', str(folder/'ref.pt'), epochs=1)],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr[-2000:]
    return once_per_run(tmp_path_factory, 'torchrun-reference', make)/'ref.pt'

ONE_EPOCH = ((0, 50), (0, 100), (0, 150))   # the kill points of a one-epoch run

@pytest.mark.parametrize('form', ['no-python', 'module'])
def test_torchrun_restart_continues_from_the_checkpoint(mnist, torchrun_reference, tmp_path, form):
    ref, run = torchrun_reference, lambda *more: torchrun(form, *more)
    d, b = tmp_path/'D', tmp_path/'B.pt'
    p = start(*fit_args(mnist, '--checkpoint', str(d), '--checkpoint-every', '50', '--save', str(b), epochs=1),
              cmd=run('--max-restarts', '1', '--redirects', '3', '--log-dir', str(tmp_path/'logs')))
    kill_point(d, p, ONE_EPOCH)   # the kill lands at any batch from 50 to about 250 of 400
    workers = children(p.pid)
    assert len(workers) == 2
    os.kill(max(workers), signal.SIGKILL)   # one worker dies; torchrun restarts both
    killed = time.time()
    out, err = p.communicate(timeout=180)
    # kept for a look afterwards (pytest keeps its last three runs' folders): once in eight runs, torchrun's restart has
    # waited out its 30 s grace for the surviving worker, which wrote nothing; its log's times say which step waited
    (tmp_path/'torchrun.log').write_text(f"killed {max(workers)} at {datetime.fromtimestamp(killed):%H:%M:%S.%f}\n{err}")
    assert p.returncode == 0, err[-3000:]
    logs = {str(f.relative_to(tmp_path)): f.read_text() for f in (tmp_path/'logs').rglob('stderr.log')}
    assert any('attempt_1' in k and 'resuming from epoch' in v for k, v in logs.items()), logs
    a, c = torch.load(ref, weights_only=True), torch.load(b, weights_only=True)
    assert max((a[k] - c[k]).abs().max().item() for k in a) <= 1e-6

def test_resume_on_another_number_of_processes(mnist, tmp_path, cli):
    d = tmp_path/'D'
    args = fit_args(mnist, '--checkpoint', str(d), '--checkpoint-every', '50', epochs=1)
    p = start(*args, cmd=[*TORCHRUN, '--standalone', '--nproc-per-node', '2', '-m', 'minitrain.cli'])
    kill_point(d, p, ONE_EPOCH)
    for w in children(p.pid): os.killpg(w, signal.SIGKILL)   # torchrun starts each worker in a process group of its own
    os.killpg(p.pid, signal.SIGKILL); p.communicate(timeout=30)
    r = cli(*args, '--save', str(tmp_path/'B.pt'))   # one process, in this Python
    assert r.returncode == 0 and 'resuming from epoch 0' in r.stderr, r.stderr
    r = cli(*args[:-4], '--save', str(tmp_path/'A.pt'))
    assert r.returncode == 0
    a, b = torch.load(tmp_path/'A.pt', weights_only=True), torch.load(tmp_path/'B.pt', weights_only=True)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-4

def test_star_import_leaves_pytorch_and_builtin_names_alone():
    import builtins, torch.nn.functional as F_, torch.optim as optim_
    ns = {}
    exec('from minitrain.checkpoint import *', ns)
    names = {k for k in ns if k != '__builtins__'}
    assert {'CheckpointCB', 'rng_states', 'write_atomically', 'find_checkpoint'} <= names
    for mod in (torch, nn, F_, optim_, builtins): assert not names & set(dir(mod)), (mod, names & set(dir(mod)))
