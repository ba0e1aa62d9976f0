# Checks a Python app before it is deployed, inside the app's sandbox with its files as the
# working directory. argv[1] is JSON: {"entry": "main:app", "packages": [...], "forbidden": [...]}.
# Prints one JSON object: {"ok": true, "interface": "asgi3" | "wsgi", "framework": ...} or
# {"ok": false, "error": {"code", "message", "file", "line"}}.
import ast
import importlib
import inspect
import json
import os
import sys
import traceback

config = json.loads(sys.argv[1])
allowed = set(config["packages"])
forbidden = set(config["forbidden"])


def fail(code, message, file=None, line=None):
    print(json.dumps({"ok": False, "error": {"code": code, "message": message, "file": file, "line": line}}))
    sys.exit(0)


def python_files():
    for root, dirs, names in os.walk("."):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(root, name), ".")


files = list(python_files())
local = {f.split(os.sep)[0].removesuffix(".py") for f in files}


def imported(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            yield node.args[0].value, node.lineno


for path in files:
    with open(path, "rb") as f:
        source = f.read()
    try:
        tree = compile(source, path, "exec", ast.PyCF_ONLY_AST)
    except SyntaxError as e:
        fail("syntax_error", f"{path}:{e.lineno}: {e.msg}", path, e.lineno)
    except ValueError as e:
        fail("syntax_error", f"{path}: {e}", path)
    for name, line in imported(tree):
        top = name.split(".")[0]
        if top in forbidden:
            fail("forbidden_import", f"{path}:{line}: apps may not import {top}", path, line)
        if top in local or top in allowed or top in sys.stdlib_module_names or top == "__future__":
            continue
        fail(
            "import_not_allowed",
            f"{path}:{line}: {top} is not available here; apps may import the standard library, "
            f"their own modules and: {', '.join(sorted(allowed))}",
            path,
            line,
        )

module, _, attr = config["entry"].partition(":")
attr = attr or "app"
if module.replace(".", os.sep) + ".py" not in files and not os.path.isfile(
    os.path.join(module.replace(".", os.sep), "__init__.py")
):
    fail("entry_not_found", f"the entry module {module} does not exist: add {module.replace('.', '/')}.py")

sys.path.insert(0, os.getcwd())
try:
    loaded = importlib.import_module(module)
except BaseException as e:  # noqa: BLE001 - the user's code may raise anything, SystemExit too
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith(os.getcwd())]
    where = frames[-1] if frames else None
    file = os.path.relpath(where.filename) if where else None
    prefix = f"{file}:{where.lineno}: " if where else ""
    fail("import_failed", f"{prefix}importing {module} raised {type(e).__name__}: {e}", file, where.lineno if where else None)

app = getattr(loaded, attr, None)
if app is None:
    fail(
        "app_not_found",
        f"{module} defines no `{attr}`: the server looks for it, e.g. `{attr} = FastAPI()` or `{attr} = Flask(__name__)`",
        module.replace(".", "/") + ".py",
    )
framework = type(app).__module__.split(".")[0]
if hasattr(app, "wsgi_app"):
    interface = "wsgi"
elif framework in ("fastapi", "starlette"):
    interface = "asgi3"
elif inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(getattr(app, "__call__", None)):
    interface = "asgi3"
elif callable(app):
    interface = "wsgi"
else:
    fail(
        "app_not_callable",
        f"{module}.{attr} is a {type(app).__name__}, not an ASGI or WSGI application",
        module.replace(".", "/") + ".py",
    )
print(json.dumps({"ok": True, "interface": interface, "framework": framework}))
