"""The lessons' tolerant checks still catch real mistakes.

A training run's numbers differ in their last digits from one processor to another, so the lessons check them within
a tolerance measured across `tools/matrix.py`'s settings. Here each family of such checks meets the mistakes a reader
makes (a learning rate ten times too large, a forgotten `zero_grad`, labels that no longer match their images, a
refactor step done wrong): the mistake goes into the lesson's own code, the lesson runs up to its check, and the check
must fail. Without the mistake the same check passes, in `nbdev-test`.
"""
import os
from pathlib import Path
import pytest
from lesson import run_lesson

DATA = os.environ.get('MINITRAIN_DATA')
pytestmark = pytest.mark.skipif(not DATA or not (Path(DATA)/'mnist.pkl.gz').exists() and not (Path(DATA)/'mnist').exists(),
                                reason="the lessons train on real MNIST: set MINITRAIN_DATA to a folder that has it")

# The training lesson's first cells look at the pixels' exponentials over the whole training set (3 s): nothing after them
# uses what they compute, so its runs here leave them out
SKIP = {'01_training.ipynb': 'x_train.exp()'}

def fails(name, until, *changes, skip=()):
    "Run lesson `name` with `changes` up to the check in the cell containing `until`, leaving out cells with `skip`; return the check's error."
    skips = ((SKIP[name],) if name in SKIP else ()) + tuple(skip)
    e = run_lesson(name, until, changes, skip=skips or None)
    assert e is not None, f'the check in {name} passed despite {changes}'
    return e

SHUFFLE = "y_train = y_train[torch.randperm(len(y_train), generator=torch.Generator().manual_seed(0))]\n"

# 01_training, the seed's loop: its three lines against the seed's, within the lesson's tolerance
SEED_CHECK = 'numbers(this_machine)'
@pytest.mark.parametrize('changes', [
    [('lr = 0.5', 'lr = 5.')],                                                   # learning rate 10x
    [('                    l.weight.grad.zero_()\n                    l.bias.grad.zero_()\n', ''),
     ('p -= p.grad * lr; p.grad.zero_()', 'p -= p.grad * lr')],                  # the gradients are never cleared
    [('lr = 0.5', SHUFFLE + 'lr = 0.5')],                                        # labels no longer match their images
], ids=['lr-10x', 'no-zero-grad', 'shuffled-labels'])
def test_the_seed_loop_check_catches(changes):
    e = fails('01_training.ipynb', SEED_CHECK, *changes)
    assert isinstance(e, AssertionError) and 'close' in str(e), repr(e)

# The refactor steps' runs before the simple loader's, and their same-weights checks: the loader's check stands on the
# seed loop's weights alone (4.6 s of the 10)
STEPS_BEFORE = ('model = Model(m, nh, 10)\nfit()', 'opt = Optimizer(model.parameters(), lr)\nfit()', "# Same weights as the seed's loop")

def test_a_refactor_done_wrong_is_caught_exactly():
    "The simple loader drops the last batch of each epoch: the lesson's same-weights check fails."
    e = run_lesson('01_training.ipynb', 'seed_weights))',
                   [('for i in range(0, len(self.ds), self.bs)', 'for i in range(0, len(self.ds) - self.bs, self.bs)')],
                   after='train_dl = SimpleDataLoader(train_ds, bs)', skip=(SKIP['01_training.ipynb'], *STEPS_BEFORE))
    assert isinstance(e, AssertionError), repr(e)

# 07_init: each run's two validation accuracies within the lesson's tolerance, and the ordering its prose states
PLAIN, KAIMING = "runs = {'plain': accuracies(learn)}", "runs['kaiming'] = accuracies(learn)"
@pytest.mark.parametrize('until,changes', [
    (PLAIN, [('learn, astats = fit(get_model())', 'learn, astats = fit(get_model(), lr=2.)')]),          # learning rate 10x
    (PLAIN, [('x_tr, y_tr = images(x_train[:10_000]), y_train[:10_000]',
              'x_tr, y_tr = images(x_train[:10_000]), y_train[:10_000][torch.randperm(10_000, generator=torch.Generator().manual_seed(0))]')]),
    (KAIMING, [('learn, astats = fit(get_model().apply(init_weights))', 'learn, astats = fit(get_model())')]),   # the init left out
], ids=['lr-10x', 'shuffled-labels', 'init-undone'])
def test_the_init_lessons_checks_catch(until, changes):
    e = fails('07_init.ipynb', until, *changes)
    assert isinstance(e, AssertionError), repr(e)

# 08_sgd: one epoch of each optimiser within the lesson's tolerance, and the ordering its prose states
@pytest.mark.parametrize('until,changes', [
    ("runs = {'sgd': accuracies(learn)}", [('learn = fit(SGD, 0.4)', 'learn = fit(SGD, 4.)')]),                      # learning rate 10x
    ("runs = {'sgd': accuracies(learn)}", [('for p in self.params: p.grad.data.zero_()', 'pass')]),                 # no zero_grad
    ("runs['adam'] = accuracies(learn)", [('(unbias_sqr_avg + self.eps).sqrt()', '(unbias_sqr_avg + self.eps)')]),  # the root forgotten
], ids=['lr-10x', 'no-zero-grad', 'adam-without-root'])
def test_the_optimisers_lessons_checks_catch(until, changes):
    e = fails('08_sgd.ipynb', until, *changes)
    assert isinstance(e, AssertionError), repr(e)

# 01_training, the validation accuracy the command line's main job also prints (0.9546 on the seed's machine, within 0.006)
# (it stands on the seed loop's model alone: the loop's second run, which the lines' check before it reads, is left out)
def test_the_validation_accuracy_check_catches_a_learning_rate_10x():
    e = fails('01_training.ipynb', 'test_close(valid_acc, 0.9546', ('lr = 0.5', 'lr = 5.'),
              ('test_close(numbers(this_machine), numbers(seed_printed), eps=0.08)', 'pass'),   # the check before it fails too
              skip=('# The loop again from the same seed', '# what the seed printed'))
    assert isinstance(e, AssertionError) and 'close' in str(e), repr(e)
