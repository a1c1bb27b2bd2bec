"""Build the documentation site into _docs/ from the notebooks in nbs/, with Jupyter Book 1 (Sphinx and MyST-NB).

    pip install -e ".[docs]"    # once: the docs tools
    python tools/docs.py        # build _docs/; open _docs/index.html

Each notebook goes through nbdev's processing first, the same as README.md (`tools/readme.py`): directives stripped,
`#|hide` cells dropped, the front matter made the title and summary. Nothing is executed: the saved outputs are the
content (CI checks that they are not stale). The site needs no network to be read: MathJax 3 is taken from the npm
registry when the site is built (`npm pack mathjax@3`) and served from the site itself.
"""
import datetime, re, shutil, subprocess, sys, tarfile, tempfile, textwrap, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
# every module of the package, in the order of the README's map of it ("The stack", bottom first): one left out of
# the map is a failure of tests/test_stack.py, so none is left out of the API page or the signatures
MODULES = re.findall(r'`minitrain\.(\w+)`', (ROOT/'README.md').read_text().split('## The stack', 1)[1].split('From the bottom:', 1)[1].split('. ', 1)[0])
MATHJAX = 'mathjax@3.2.2'
# Outputs wrap, so that a reader sees a whole message, row or tensor without scrolling sideways; code keeps its lines.
# The article takes the width the sidebars leave, and code a slightly smaller font, so that a line of about 100
# characters fits beside them in a window 1280 pixels wide.
CSS = '''div.cell_output pre, div.cell_output .output pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.bd-main .bd-content .bd-article-container { max-width: 100%; }
.bd-sidebar-primary { width: 15rem; flex-basis: 15rem; }
.bd-sidebar-secondary { width: 13rem; flex-basis: 13rem; }
div.cell pre, div.highlight pre { font-size: 0.77rem; }
'''

def check_tools():
    "Stop with the install command if Jupyter Book is missing."
    try: import jupyter_book  # noqa: F401
    except ImportError: sys.exit('tools/docs.py needs the docs tools: pip install -e ".[docs]"')

def notebooks():
    "The notebooks of the site, in lesson order: index first, then the numbered ones; `_`-prefixed ones are left out."
    nbs = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith('_'))
    return sorted(nbs, key=lambda p: p.stem != 'index')

def tidy_show_doc(cell):
    "Drop from `show_doc`'s Markdown what is Quarto's (a rule, a `{target=...}` link to GitHub), which Sphinx cannot place."
    for o in cell.get('outputs', []):
        md = o.get('data', {}).get('text/markdown')
        if md is None: continue
        lines = (''.join(md) if isinstance(md, list) else md).splitlines()
        o['data']['text/markdown'] = '\n'.join(l for l in lines if l.strip() != '---' and not l.startswith('[source]('))

def resolve(name):
    "The package's object called `name` ('Learner', 'Learner.fit'), or None."
    import importlib
    head, *rest = name.split('.')
    for m in MODULES:
        obj = getattr(importlib.import_module(f'minitrain.{m}'), head, None)
        if obj is None: continue
        for r in rest: obj = getattr(obj, r, None)
        return obj
    return None

def default_text(v):
    "A default value as a reader would write it: a function or class by its name, a partial as a call, anything else by its repr."
    import functools
    if isinstance(v, functools.partial):
        args = [default_text(v.func), *map(default_text, v.args), *(f'{k}={default_text(a)}' for k, a in v.keywords.items())]
        return f"partial({', '.join(args)})"
    return getattr(v, '__name__', None) if callable(v) and hasattr(v, '__name__') else repr(v)

def signature_text(obj, name):
    "`class Name(params)` for a class, `def name(params)` for a function: Python's own parameters, without guessed types."
    import inspect
    try: params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError): params = []
    if params and params[0].name == 'self': params = params[1:]
    parts = []
    for p in params:
        star = '*' if p.kind == p.VAR_POSITIONAL else '**' if p.kind == p.VAR_KEYWORD else ''
        parts.append(star + p.name + ('' if p.default is p.empty else '=' + default_text(p.default)))
    head = f"{'class' if inspect.isclass(obj) else 'def'} {name.split('.')[-1]}"
    one = f"{head}({', '.join(parts)})"
    return one if len(one) <= 90 else head + '(\n    ' + ',\n    '.join(parts) + '\n)'

def real_signature(cell):
    "Put Python's own signature in place of the one nbdev's `show_doc` writes, which shows a class as `def` and guesses types."
    m = re.search(r'show_doc\(([\w.]+)', cell.source) if cell.cell_type == 'code' else None
    obj = resolve(m[1]) if m else None
    if obj is None: return
    for o in cell.get('outputs', []):
        md = o.get('data', {}).get('text/markdown')
        if md is None: continue
        md = ''.join(md) if isinstance(md, list) else md
        block = f"```python\n{signature_text(obj, m[1])}\n```"
        o['data']['text/markdown'] = re.sub(r'```python\n.*?```', lambda _: block, md, count=1, flags=re.S)

def quarto_directives(cell):
    "Turn the Quarto directives nbdev leaves on the `show_doc` cells it adds (`#| echo: false`) into MyST-NB's tag."
    if cell.cell_type != 'code' or not cell.source.startswith('#|'): return
    lines = cell.source.splitlines()
    if any(l.replace(' ', '') == '#|echo:false' for l in lines if l.startswith('#|')):
        cell.metadata.setdefault('tags', []).append('remove-input')
    cell.source = '\n'.join(l for l in lines if not l.startswith('#|'))

def documented(m):
    """The names module `minitrain.m` documents: the functions and classes it defines whose names do not start with `_`,
    whether a star import gives them (`__all__`) or not (`DataLoader`, say, which must not replace PyTorch's)."""
    import importlib, inspect
    mod = importlib.import_module(f'minitrain.{m}')
    return [n for n, o in vars(mod).items() if not n.startswith('_') and (inspect.isclass(o) or inspect.isfunction(o))
            and getattr(o, '__module__', None) == mod.__name__]

def public_names():
    "Each documented name of the package, to its full name; names defined in two modules are left out."
    seen = {}
    for m in MODULES:
        for n in documented(m): seen.setdefault(n, []).append(f'minitrain.{m}.{n}')
    return {n: fs[0] for n, fs in seen.items() if len(fs) == 1 and len(n) > 2}

def link_names(md, names):
    "`Name` in Markdown prose, for a public name of the package, as a link to its entry in the API reference."
    parts = re.split(r'(```.*?```)', md, flags=re.S)   # leave fenced code alone
    sub = lambda m: f"{{py:obj}}`{m[1]} <{names[m[1]]}>`" if m[1] in names else m[0]
    return ''.join(p if p.startswith('```') else re.sub(r'(?<![`{])`([A-Za-z_][A-Za-z0-9_]*)`(?!`)', sub, p) for p in parts)

def write_pages(src):
    "Each notebook, processed, as a page source in `src`; a copy of the original for download; and the API page."
    import nbformat
    from nbformat.v4 import new_markdown_cell
    from readme import processed
    (src/'notebooks').mkdir()
    names = public_names()
    for fn in notebooks():
        nb, fm = processed(fn)
        for c in nb.cells:
            tidy_show_doc(c)
            real_signature(c)
            quarto_directives(c)
            if c.cell_type == 'markdown':
                c.source = link_names(c.source.replace('](nbs/', ']('), names)   # the README's links, from the site's root
        head = f"# {fm.get('title', fn.stem)}\n\n" + (f"> {fm['description']}\n\n" if fm.get('description') else '')
        if fn.stem != 'index': head += f'<a class="source-link" href="{fn.name}">The notebook this page is made from</a>\n'
        nb.cells.insert(0, new_markdown_cell(head))
        nb.metadata.pop('widgets', None)
        nbformat.write(nb, src/fn.name)
        shutil.copy(fn, src/'notebooks'/fn.name)
    api = ['# API reference', '', 'Every public name of the package, with its signature and docstring, module by module.', '']
    for m in MODULES:
        api += [f'## minitrain.{m}', '', '```{eval-rst}', f'.. automodule:: minitrain.{m}', f"   :members: {', '.join(documented(m))}", '```', '']
    (src/'api.md').write_text('\n'.join(api))

def write_config(src):
    "Jupyter Book's `_config.yml` and `_toc.yml`."
    chapters = '\n'.join(f'  - file: {p.stem}' for p in notebooks() if p.stem != 'index')
    (src/'_toc.yml').write_text(f"format: jb-book\nroot: index\nchapters:\n{chapters}\n  - file: api\n")
    (src/'_config.yml').write_text(textwrap.dedent('''\
        title: minitrain
        author: minitrain developers
        copyright: 'YEAR'
        only_build_toc_files: true
        execute:
          execute_notebooks: 'off'
        html:
          use_repository_button: false
          use_download_button: false
          home_page_in_navbar: true
        launch_buttons:
          notebook_interface: classic
          binderhub_url: ''
          colab_url: ''
          thebe: false
        parse:
          myst_enable_extensions: [dollarmath, amsmath, colon_fence, html_image]
        sphinx:
          extra_extensions: [sphinx.ext.autodoc]
          config:
            mathjax_path: mathjax/tex-chtml.js
            html_static_path: [mathjax_static, site_static]
            html_css_files: [minitrain.css]
            html_extra_path: [notebooks]
            nb_ipywidgets_js: {}
            autodoc_member_order: bysource
            html_context:
              default_mode: light
            suppress_warnings: [myst.header]
        ''').replace('YEAR', str(datetime.date.today().year)))
    (src/'site_static').mkdir()
    (src/'site_static'/'minitrain.css').write_text(CSS)

def fetch_mathjax(dest):
    "MathJax 3's browser build from the npm registry, without its 4 MB speech engine, into `dest`."
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(['npm', 'pack', MATHJAX, '--silent'], cwd=d, check=True, capture_output=True)
        with tarfile.open(next(Path(d).glob('mathjax-*.tgz'))) as t: t.extractall(d, filter='data')
        es5 = Path(d)/'package'/'es5'
        dest.mkdir(parents=True)
        shutil.copy(es5/'tex-chtml.js', dest)
        for sub in ['output/chtml/fonts/woff-v2', 'input/tex/extensions', 'ui', 'a11y']: shutil.copytree(es5/sub, dest/sub)

def run(cmd):
    "Run `cmd`; stop with its output if it fails."
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: sys.exit(f"{' '.join(cmd[:4])} ... failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")

def build(out=ROOT/'_docs'):
    "Build the site into `out`; returns the number of pages."
    check_tools()
    warnings.filterwarnings('ignore', message='Found cells containing imports and other code')  # nbdev's, about #|hide set-up cells
    with tempfile.TemporaryDirectory() as d:
        src = Path(d)/'src'
        src.mkdir()
        write_pages(src)
        write_config(src)
        fetch_mathjax(src/'mathjax_static'/'mathjax')   # not in _static: Jupyter Book would load every .js there on every page
        # Jupyter Book turns its configuration into Sphinx's conf.py; we drop sphinx_thebe, which declares a script twice
        # on some pages and would fetch Thebe from a CDN, and run Sphinx ourselves, with warnings (a broken link, say) as errors.
        jb = [sys.executable, '-c', 'import sys; from jupyter_book.cli.main import main; sys.exit(main())']
        run(jb + ['config', 'sphinx', str(src)])
        with open(src/'conf.py', 'a') as f: f.write("\nextensions = [e for e in extensions if e != 'sphinx_thebe']\n")
        run([sys.executable, '-m', 'sphinx', '-b', 'html', '-W', '--keep-going', '-q', str(src), str(Path(d)/'html')])
        if out.exists(): shutil.rmtree(out)
        shutil.copytree(Path(d)/'html', out, ignore=shutil.ignore_patterns('.buildinfo', '.doctrees'))
    pages = len(notebooks()) + 1
    print(f"built {pages} pages into {out}")
    return pages

if __name__ == '__main__': build()
