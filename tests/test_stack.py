"""The package is a stack: each module imports only from the modules below it, so each can be read, tested and changed
with only what is below it in mind. The order is the README's map of the package ("The stack")."""
import ast, re
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent/'minitrain'
README = Path(__file__).resolve().parent.parent/'README.md'

def stack():
    "The modules in the order the README's map gives them, bottom first."
    listed = README.read_text().split('## The stack', 1)[1].split('From the bottom:', 1)[1].split('. ', 1)[0]
    return re.findall(r'`minitrain\.(\w+)`', listed)

def imports(name):
    "Every minitrain module that module `name` imports, at its top or inside a function, with the names it takes."
    found = []
    for node in ast.walk(ast.parse((PKG/f'{name}.py').read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1: found.append((mod.split('.')[0] or None, [a.name for a in node.names]))
            elif mod.startswith('minitrain.'): found.append((mod.split('.')[1], [a.name for a in node.names]))
            elif mod == 'minitrain': found += [(a.name, []) for a in node.names]
    return found

def modules(): return sorted(p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_'))

def test_the_map_names_every_module_once():
    assert sorted(stack()) == modules(), (stack(), modules())

def test_each_module_imports_only_from_below():
    order = {m: i for i, m in enumerate(stack())}
    up = {(m, dep) for m in order for dep, _ in imports(m) if dep is not None and order[dep] >= order[m]}
    assert up == set(), f'imports that go up the stack: {sorted(up)}'

def test_no_module_hands_out_names_through_getattr():
    "A module-level `__getattr__` hides where a name lives: a name a module hands out is imported there plainly."
    hiding = {m for m in modules() for n in ast.parse((PKG/f'{m}.py').read_text()).body
              if isinstance(n, ast.FunctionDef) and n.name == '__getattr__'}
    assert hiding == set(), hiding

def test_no_private_name_crosses_modules():
    private = [(m, dep, n) for m in modules() for dep, names in imports(m) for n in names if n.startswith('_')]
    assert private == [], private

def test_the_check_sees_an_import_that_goes_up(tmp_path, monkeypatch):
    "The check reads imports inside functions too: a lazy import of a higher module counts."
    (tmp_path/'training.py').write_text('def f():\n    from minitrain.cli import main\n')
    monkeypatch.setitem(globals(), 'PKG', tmp_path)
    assert imports('training') == [('cli', ['main'])]

# The names each module defined or exported (`__all__`) at 47ec3cf, before its pieces moved down the stack (issue 35):
# each must stay importable from it, so that moving a piece down never breaks a user's import.
NAMES_AT_47EC3CF = {
    'activations': ['ActivationStats', 'Hook', 'Hooks', 'HooksCallback', 'append_stats', 'get_hist', 'get_min',
                  'set_seed'],
    'backprop': ['ManualStepCB', 'check_mlp', 'manual_step', 'mlp_grads'],
    'checkpoint': ['BackgroundWriter', 'CheckpointCB', 'CheckpointError', 'DamagedCheckpoint', 'FORMAT', 'OptStateCB',
                 'RunStopped', 'check_config', 'check_model', 'check_position', 'checkpoint_name', 'checkpoints',
                 'find_checkpoint', 'load_opt_state', 'opt_state', 'read_checkpoint', 'rng_states', 'set_rng_states',
                 'snapshot', 'unwrap', 'why_unreadable', 'write_atomically'],
    'cli': ['CNN_WIDTHS', 'OneLineParser', 'RECIPES', 'Terminated', 'check_writable', 'checkpoint_folder',
          'cnn_images', 'cnn_loss', 'cnn_memory_needed', 'cnn_model', 'data_folder', 'figure_file', 'fit_model',
          'main', 'memory_needed', 'model_file', 'open_checkpoint', 'opt_func', 'parser', 'physical_memory',
          'positive_number', 'run_config', 'save_figure', 'save_model', 'stop_handler', 'whole_number',
          'with_defaults'],
    'data': ['ArrayUnpickler', 'CappedReader', 'DataLoaders', 'DownloadError', 'ELSEWHERE', 'ENV_VAR', 'MIRRORS',
           'MNISTFileError', 'MNIST_FILES', 'NoSpaceError', 'OPCODES', 'PICKLE_MOST', 'can_show_figures',
           'cannot_read', 'check_regular', 'data_dir', 'default_data_dir', 'download', 'download_mnist', 'get_grid',
           'ipython_shell', 'load_idx', 'load_mnist', 'load_pickle', 'read_idx', 'remove_folders', 'show_digits',
           'show_image', 'show_images', 'subplots', 'usual_mode', 'write_idx'],
    'distributed': ['DistributedCB', 'dist_env', 'dist_timeout', 'join_group', 'leave', 'shard'],
    'init': ['BatchNorm', 'BatchTransformCB', 'GeneralRelu', 'LayerNorm', 'clean_ipython_hist', 'clean_mem',
           'clean_tb', 'collate_device', 'conv', 'def_device', 'get_model', 'init_weights', 'is_batchnorm',
           'kaiming_std', 'lsuv_init', 'lsuv_stats', 'plot_func', 'to_device'],
    'learner': ['BatchCheckCB', 'Callback', 'CancelBatchException', 'CancelEpochException', 'CancelFitException',
              'CapturePreds', 'DataLoaders', 'DeviceCB', 'ItemMean', 'LRFinderCB', 'Learner', 'MetricsCB',
              'MomentumLearner', 'NaNStopCB', 'ProgressCB', 'RecorderCB', 'SingleBatchCB', 'TrainCB', 'TrainLearner',
              'as_cbs', 'capture_preds', 'check_device', 'check_devices', 'check_dls', 'check_labels',
              'check_loss_func', 'collate_device', 'def_device', 'default_device', 'get_lr', 'is_class_loss',
              'lr_find', 'run_cbs', 'set_lr', 'smooth', 'to_cpu', 'to_device', 'with_cbs'],
    'progress': ['ProgressCB', 'RecorderCB', 'bar_kind', 'in_kernel', 'is_main_process'],
    'sgd': ['Adam', 'BaseSchedCB', 'BatchSchedCB', 'EpochSchedCB', 'ForeachOptimizer', 'HasLearnCB', 'MixedPrecision',
          'RMSProp', 'RecorderCB', 'SGD', 'cos_anneal', 'one_cycle', 'random_shift', 'shift_batch'],
    'training': ['BatchSampler', 'DataLoader', 'Dataset', 'MLP', 'Model', 'Optimizer', 'Sampler', 'accuracy',
               'check_bs', 'check_epochs', 'check_losses', 'check_lr', 'check_targets', 'collate', 'cross_entropy',
               'evaluate', 'fetch', 'fit', 'get_dls', 'labels_of', 'log_softmax', 'logsumexp', 'nll', 'report',
               'set_seed', 'train_one_epoch'],
    'workers': ['worker_batches'],
}

def test_names_stay_importable_from_their_modules():
    import importlib
    gone = {m: [n for n in names if not hasattr(importlib.import_module(f'minitrain.{m}'), n)] for m, names in NAMES_AT_47EC3CF.items()}
    assert not any(gone.values()), {m: g for m, g in gone.items() if g}
