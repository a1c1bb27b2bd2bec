"""Build README.md from nbs/index.ipynb: nbdev's notebook processing, then nbconvert's Markdown exporter.

`nbdev-readme` needs Quarto; this does the same job with Python tools alone.
    python tools/readme.py          # write README.md
    python tools/readme.py --check  # exit 1 if README.md differs from what index.ipynb gives
"""
import sys, tempfile
from pathlib import Path
import yaml
from fastcore.nbio import read_nb, write_nb
from nbconvert.exporters import MarkdownExporter
from nbformat import reads, NO_CONVERT
from nbdev.config import get_config
from nbdev.process import NBProcessor
from nbdev.processors import FilterDefaults

def front_matter(cell):
    "The YAML of a front-matter cell (`---` … `---`), or None for any other cell."
    src = cell.source.strip()
    if cell.cell_type != 'raw' or not src.startswith('---'): return None
    return yaml.safe_load(src.strip('-')) or {}

def processed(src):
    """Notebook `src` as nbdev's processing leaves it, as an nbformat notebook, and its front matter (title, description).

    What `nbdev-proc-nbs` does to each notebook (nbdev.serve_drv.exec_nb), without its Quarto check: directives
    removed, `#|hide` cells dropped, the title and summary moved into a front-matter cell (taken out and returned here),
    and so on. Left out: `add_links`, which turns `name` into a link to nbdev's docs site; those links would be dead."""
    nbdev_nb = read_nb(src)
    procs = [p for p in FilterDefaults().procs() if getattr(p, '__name__', '') != 'add_links']
    NBProcessor(nb=nbdev_nb, procs=procs, rm_directives='quarto').process()
    with tempfile.TemporaryDirectory() as d:
        write_nb(nbdev_nb, Path(d)/'nb.ipynb')
        nb = reads((Path(d)/'nb.ipynb').read_text(), NO_CONVERT)
    fm = front_matter(nb.cells[0]) if nb.cells else None
    if fm is not None: nb.cells = nb.cells[1:]
    return nb, fm or {}

def render():
    "README.md's text, made from the readme notebook named in pyproject.toml."
    cfg = get_config()
    nb, fm = processed(cfg.nbs_path/cfg.readme_nb)
    head = f"# {fm.get('title', cfg.lib_name)}\n\n" + (f"> {fm['description']}\n\n" if fm.get('description') else '')
    body, _ = MarkdownExporter(exclude_input_prompt=True, exclude_output_prompt=True).from_notebook_node(nb)
    return head + body.strip() + '\n'

def main(argv):
    readme = get_config().config_path/'README.md'
    text = render()
    if '--check' in argv:
        if not readme.exists() or readme.read_text() != text:
            sys.exit(f"{readme} is stale: run `python tools/readme.py` and commit the result.")
        print("README.md is up to date.")
    else: readme.write_text(text)

if __name__ == '__main__': main(sys.argv[1:])
