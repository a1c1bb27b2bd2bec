"""Clean the notebooks in nbs/ as `nbdev-clean` does, then give each the kernelspec that ipykernel installs.

`nbdev-clean` sets a notebook's kernelspec `display_name` to the kernel's name (`python3`). JupyterLab writes the
display name of the kernel it starts (`Python 3 (ipykernel)`) into the notebook when it opens it, and a notebook
whose metadata changed is marked as modified. Saving the display name JupyterLab will write avoids that.

    python tools/clean.py            # clean every notebook in nbs/
    python tools/clean.py --check    # exit 1, naming the notebooks, if cleaning would change any
"""
import sys
from pathlib import Path
from fastcore.nbio import read_nb, write_nb
from nbdev.clean import _nbdev_clean
from nbdev.config import get_config

KERNELSPEC = {'display_name': 'Python 3 (ipykernel)', 'language': 'python', 'name': 'python3'}

def clean(fn):
    "Clean notebook `fn` in place; return True if that changed it."
    before = Path(fn).read_text()
    nb = read_nb(fn)
    _nbdev_clean(nb, path=fn)
    nb['metadata']['kernelspec'] = dict(KERNELSPEC)
    write_nb(nb, fn)
    return Path(fn).read_text() != before

def main(argv):
    fns = sorted(get_config().nbs_path.glob('*.ipynb'))
    if '--check' in argv:
        texts = {fn: fn.read_text() for fn in fns}
        changed = [fn for fn in fns if clean(fn)]
        for fn in changed: fn.write_text(texts[fn])  # leave the files as they were
        if changed: sys.exit("not clean (run `python tools/clean.py`): " + ', '.join(str(f) for f in changed))
        print(f"{len(fns)} notebooks clean")
    else:
        for fn in fns: clean(fn)

if __name__ == '__main__': main(sys.argv[1:])
