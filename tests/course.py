"""Run a notebook of the course (course22p2, in ../shared/course22p2/nbs) against minitrain, as a course reader would.

Only these changes are made to the course's code:
- imports: `from miniai.X import *` becomes minitrain's module for X; torchvision's `transforms` and `transforms.functional`
  become minitrain's augment module, which has the ones the course uses under their names (`to_tensor`, `hflip`,
  `RandomCrop`, `RandomHorizontalFlip`); imports of what cannot be had or is not used here
  (the Hugging Face hub's loaders, the rest of torchvision, fastprogress) are dropped. An `#|export` cell, whose definitions minitrain provides,
  is replaced by an import of the names it defines from the notebook's minitrain module, so that from there on they
  are minitrain's; an `#|export` cell of imports alone runs, with its imports changed, and so does one that defines only
  `_private` helpers (14_augment's `_rand_erase1`), which a star import never brings: the reader's notebook defines them.
- IPython: `%time stmt` runs `stmt`; other magics are dropped.
- data: the cells that load Fashion-MNIST from the hub (04_minibatch_training: MNIST from a URL) are replaced by cells
  that give the same names for MNIST, shaped as the notebook's own transforms leave the data: one cell for the first,
  or one for each, in order, when the notebook loads its data more than once (11_initializing normalises it, then
  changes the batch size).
- long runs, where a test asks for it: a line `epochs = N` with N above `max_epochs` sets it to `max_epochs`. The
  course's runs of 5 to 50 epochs are for a GPU and the full data; shortened, each still takes every step of a fit.
Every other cell runs as the course wrote it, in order, in one namespace, with its stdout captured.
"""
import ast, contextlib, io, json, re, traceback
from pathlib import Path

COURSE = Path(__file__).resolve().parents[2]/'shared'/'course22p2'/'nbs'

# the course's modules, and minitrain's that take their place
MODULES = {'learner': 'learner', 'training': 'training', 'conv': 'conv', 'datasets': 'datasets', 'activations': 'activations',
           'init': 'init', 'sgd': 'sgd', 'resnet': 'resnet'}
UNAVAILABLE = ('datasets', 'torchvision', 'fastprogress')   # the hub's loader, and packages minitrain does not use
DATA_MARKERS = ('load_dataset(', '@inplace', 'with_transform(', '.from_dd(', "/'mnist.pkl.gz'")   # the hub's; 04's file
# torchvision's functions the course uses, from minitrain's modules that have them under the same names
SUBSTITUTES = {'torchvision.transforms.functional': 'minitrain.augment',   # to_tensor, hflip
               'torchvision.transforms': 'minitrain.augment'}              # RandomCrop, RandomHorizontalFlip

def code_cells(name, folder=COURSE):
    "The source of each code cell of notebook `name` in `folder` (the course's, unless another is given)."
    nb = json.loads((folder/name).read_text())
    return [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code']

def directives(src): return [l.replace(' ', '') for l in src.splitlines() if l.startswith('#|')]

def is_import(line):
    s = line.strip()
    return not s or s.startswith('#') or re.match(r'(from\s+\S+\s+)?import\s', s) is not None

def change_import(line):
    "`line` with miniai's modules replaced by minitrain's, or '' for an import of what cannot be had here."
    m = re.match(r'\s*from\s+miniai\.(\w+)\s+import\s+(.*)', line)
    if m:
        return f'from minitrain.{MODULES[m[1]]} import {m[2]}'
    m = re.match(r'(\s*)from\s+(\S+)\s+import\s+(\w+)\s*$', line)   # `from torchvision import transforms`
    if m and f'{m[2]}.{m[3]}' in SUBSTITUTES: return f'{m[1]}import {SUBSTITUTES[m[2] + "." + m[3]]} as {m[3]}'
    m = re.match(r'\s*from\s+(\S+)\s+import', line)
    if m: return '' if m[1].split('.')[0] in UNAVAILABLE else line
    m = re.match(r'(\s*)import\s+(.*)', line)
    if m:   # `import a.b as c, d`: minitrain's module for torchvision's, and the other modules that can be had
        names = [n.strip().split() for n in m[2].split(',')]
        kept = [' '.join([SUBSTITUTES[n[0]], *n[1:]]) if n[0] in SUBSTITUTES else ' '.join(n) for n in names
                if n[0] in SUBSTITUTES or n[0].split('.')[0] not in UNAVAILABLE]
        return f"{m[1]}import {', '.join(kept)}" if kept else ''
    return line

def defined(src):
    "The public names that the top level of `src` defines: classes, functions and assignments (not `_private` helpers)."
    names = []
    for node in ast.parse(src).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)): names.append(node.name)
        elif isinstance(node, ast.Assign): names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return [n for n in names if not n.startswith('_')]

def unmagic(line):
    "`line` as plain Python: IPython's `%time stmt` runs `stmt`; another magic or shell line is dropped."
    s = line.lstrip()
    if s.startswith('%time '): return line.replace('%time ', '', 1)
    return '' if s.startswith(('%', '!')) else line

def shorten(line, max_epochs):
    "`line` with a number of epochs above `max_epochs` (`epochs = 50`) set to it."
    if max_epochs is None: return line
    m = re.fullmatch(r'(\s*epochs\s*=\s*)(\d+)(\s*)', line)
    return f'{m[1]}{max_epochs}{m[3]}' if m and int(m[2]) > max_epochs else line

def rewrite(cells, module, data_cell, markers=DATA_MARKERS, stop=None, max_epochs=None):
    """The cells to run: (index in the notebook, source), with imports, exports and data cells changed as described above.
    `data_cell` replaces the first data cell (the others are dropped), or, as a list, each data cell in turn; a data
    cell is one that holds one of `markers`. With `stop`, the cells from the first that holds it on are left out; with
    `max_epochs`, longer runs are shortened to it."""
    out, data_cells = [], list(data_cell) if isinstance(data_cell, (list, tuple)) else [data_cell]
    for i, src in enumerate(cells):
        if stop is not None and stop in src: break
        ds = directives(src)
        if any(d.startswith('#|default_exp') for d in ds) or 'nbdev_export()' in src: continue
        if any(m in src for m in markers):
            if data_cells: out.append((i, data_cells.pop(0)))
            elif isinstance(data_cell, (list, tuple)): raise ValueError(f'cell {i} loads data, and no replacement is left for it')
            continue
        lines = [l for l in src.splitlines() if not l.startswith('#|')]
        if any(d.startswith('#|export') for d in ds) and not all(is_import(l) for l in lines) and defined(src):
            lines = [l for l in lines if is_import(l) and l == l.lstrip()] + [f"from minitrain.{module} import {', '.join(defined(src))}"]
        out.append((i, '\n'.join(shorten(change_import(unmagic(l)), max_epochs) for l in lines)))
    if data_cells and isinstance(data_cell, (list, tuple)): raise ValueError(f'{len(data_cells)} data cells were not used')
    return out

def run(name, module, data_cell, markers=DATA_MARKERS, stop=None, max_epochs=None):
    "Run the course's notebook `name` on minitrain; returns the namespace, each run cell's stdout, and the failures."
    import matplotlib
    matplotlib.use('Agg')
    ns, printed, failures = {'__name__': '__course__'}, {}, []
    for i, src in rewrite(code_cells(name), module, data_cell, markers, stop, max_epochs):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try: exec(compile(src, f'<{name} cell {i}>', 'exec'), ns)
            except Exception: failures.append(f'cell {i}:\n{src}\n{traceback.format_exc(limit=-3)}')
        printed[i] = out.getvalue()
    return ns, printed, failures
