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
