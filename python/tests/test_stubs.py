"""The type stubs (_maskattn.pyi) against the runtime module.

What it proves: the stub next to the imported extension declares exactly the
public names of `maskattn.__all__`; for every function (and every overload of
it) and every method of every class (Mask and the modules), the stub's
parameter names, kinds (positional / keyword-only / positional-only) and
default values equal the runtime signature; each class's properties and
public members are declared (inherited ones through the stub's base class);
every runtime function, class, public method and __call__ carries a
docstring.

The runtime signature is read from nanobind's `__nb_signature__`: a tuple of
(signature text, docstring, defaults) per overload, where the text writes
each default as a placeholder `\\N` standing for `defaults[N]` (the real
Python object). Both sides are parsed with `ast`; nothing is compared as
plain text.
"""

from __future__ import annotations

import ast
import pathlib
import re
from dataclasses import dataclass

import pytest

import maskattn
import maskattn._maskattn as ext

STUB_PATH = pathlib.Path(maskattn.__file__).parent / "_maskattn.pyi"
CLASSES = sorted(name for name in maskattn.__all__ if isinstance(getattr(maskattn, name), type))
PUBLIC_FUNCTIONS = sorted(
    name for name in maskattn.__all__ if name != "__version__" and name not in CLASSES
)


def runtime_methods(cls) -> list[str]:
    """The methods a class defines itself (nanobind functions in its __dict__)."""
    return sorted(n for n, v in vars(cls).items() if hasattr(v, "__nb_signature__"))


def runtime_properties(cls) -> set[str]:
    """Every property of the class, inherited ones included."""
    return {
        n for klass in cls.__mro__ for n, v in vars(klass).items() if isinstance(v, property)
    }


CLASS_METHODS = [(c, m) for c in CLASSES for m in runtime_methods(getattr(maskattn, c))]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "positional_only", "positional", "keyword_only"
    has_default: bool
    default: object  # a literal value (only meaningful when has_default)


def _normalize(value):
    # An empty sequence default is spelled () in the stub (the usual idiom for
    # an immutable default) and may come back as [] from the binding.
    if isinstance(value, list):
        return tuple(_normalize(v) for v in value)
    return value


def params_of(fn: ast.FunctionDef, defaults_for) -> list[Param]:
    """Parameters of a parsed def; defaults_for(node) turns a default's AST into a value."""
    a = fn.args
    positional = a.posonlyargs + a.args
    pos_defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)

    def param(arg, kind, d):
        has_default = d is not None
        value = _normalize(defaults_for(d)) if has_default else None
        return Param(arg.arg, kind, has_default, value)

    out = []
    for i, (arg, d) in enumerate(zip(positional, pos_defaults)):
        out.append(param(arg, "positional_only" if i < len(a.posonlyargs) else "positional", d))
    assert a.vararg is None and a.kwarg is None, f"{fn.name}: *args/**kwargs"
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append(param(arg, "keyword_only", d))
    return out


def comparable(params: list[Param]) -> list[tuple]:
    """What must agree. Positional-only names are not part of the call
    interface (nanobind names them arg), so only their kind counts."""
    rows = []
    for p in params:
        name = "" if p.kind == "positional_only" else p.name
        default = (type(p.default).__name__, p.default) if p.has_default else "<required>"
        rows.append((name, p.kind, default))
    return rows


# ---- the stub ---------------------------------------------------------------


@pytest.fixture(scope="module")
def stub() -> ast.Module:
    assert STUB_PATH.is_file(), f"no stub next to the module: {STUB_PATH}"
    return ast.parse(STUB_PATH.read_text(encoding="utf-8"), filename=str(STUB_PATH))


def stub_functions(body) -> dict[str, list[ast.FunctionDef]]:
    """name -> every def of that name (several for @overload)."""
    out: dict[str, list[ast.FunctionDef]] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef):
            out.setdefault(node.name, []).append(node)
    return out


def stub_class(stub: ast.Module, name: str) -> ast.ClassDef:
    for node in stub.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"class {name} not in the stub")


def is_property(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)


def is_overload(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "overload" for d in fn.decorator_list)


def stub_params(fn: ast.FunctionDef) -> list[Param]:
    return params_of(fn, ast.literal_eval)


# ---- the runtime ------------------------------------------------------------


def runtime_overloads(obj) -> list[list[Param]]:
    """The parameters of each overload of a nanobind function or method."""
    sigs = getattr(obj, "__nb_signature__", None)
    assert sigs, f"{obj!r} has no __nb_signature__"
    out = []
    for text, _doc, defaults in sigs:
        defaults = defaults or ()
        # "def f(a: int, b: str = \0) -> T": make each placeholder a name we can
        # map back to the real default object.
        src = re.sub(r"\\(\d+)", r"__default_\1", text) + ": ..."
        fn = ast.parse(src).body[0]
        assert isinstance(fn, ast.FunctionDef), text

        def value(node, defaults=defaults):
            if isinstance(node, ast.Name) and node.id.startswith("__default_"):
                return defaults[int(node.id[len("__default_"):])]
            return ast.literal_eval(node)  # a default written inline

        out.append(params_of(fn, value))
    return out


def drop_self(params: list[Param]) -> list[Param]:
    """Without the instance parameter (static methods have none)."""
    return params[1:] if params and params[0].name == "self" else params


def stub_members(stub: ast.Module, name: str) -> dict[str, list[ast.FunctionDef]]:
    """A stub class's defs, with those of its stub base classes (not overridden)."""
    cls = stub_class(stub, name)
    members: dict[str, list[ast.FunctionDef]] = {}
    for base in cls.bases:
        if isinstance(base, ast.Name):
            members.update(stub_members(stub, base.id))
    members.update(stub_functions(cls.body))
    return members


# ---- tests ------------------------------------------------------------------


def test_the_signature_source_is_nb_signature_and_the_doc_repeats_it():
    # The runtime exposes its signature in __nb_signature__ and, as text, in
    # the first line of __doc__; this suite reads the former.
    # (Array parameters are nb::handles that accept None, which the binding
    # turns into a ValueError naming the argument: hence "object | None".)
    sig_text = maskattn.attention.__nb_signature__[0][0]
    assert sig_text.startswith("def attention(q: object | None, k: object | None")
    assert maskattn.attention.__doc__.splitlines()[0].startswith("attention(q: object | None")


def test_stub_declares_exactly_the_public_names(stub):
    declared = set(stub_functions(stub.body)) | {
        n.name for n in stub.body if isinstance(n, ast.ClassDef)
    }
    variables = {
        n.target.id
        for n in stub.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }
    public = set(maskattn.__all__)
    # Functions and classes: both ways.
    assert declared == public - {"__version__"}
    # __version__ is a variable, declared as str, and is a str at run time.
    assert "__version__" in variables
    (ann,) = [
        n for n in stub.body if isinstance(n, ast.AnnAssign) and n.target.id == "__version__"
    ]
    assert isinstance(ann.annotation, ast.Name) and ann.annotation.id == "str"
    assert isinstance(maskattn.__version__, str) and maskattn.__version__
    # Every public runtime name comes from the extension the stub describes.
    for name in public:
        assert getattr(maskattn, name) is getattr(ext, name), name


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_function_parameters_match_the_runtime(stub, name):
    defs = stub_functions(stub.body).get(name)
    assert defs, f"{name} not in the stub"
    runtime = runtime_overloads(getattr(maskattn, name))
    if len(defs) > 1:
        assert all(is_overload(d) for d in defs), f"{name}: several defs without @overload"
    # Every stub overload describes the same call interface as the runtime one
    # (nanobind functions of this module have one overload each).
    assert len(runtime) == 1, f"{name}: {len(runtime)} runtime overloads"
    expected = comparable(runtime[0])
    for d in defs:
        assert comparable(stub_params(d)) == expected, f"{name} (stub line {d.lineno})"


@pytest.mark.parametrize(("cls", "method"), CLASS_METHODS)
def test_class_method_parameters_match_the_runtime(stub, cls, method):
    defs = stub_functions(stub_class(stub, cls).body).get(method)
    assert defs, f"{cls}.{method} not in the stub"
    runtime = runtime_overloads(getattr(getattr(maskattn, cls), method))
    assert len(runtime) == 1
    expected = comparable(drop_self(runtime[0]))
    for d in defs:
        assert comparable(drop_self(stub_params(d))) == expected, f"{cls}.{method}"


@pytest.mark.parametrize("cls", CLASSES)
def test_class_properties_match_the_runtime(stub, cls):
    stub_props = {
        fn.name for defs in stub_members(stub, cls).values() for fn in defs if is_property(fn)
    }
    assert stub_props == runtime_properties(getattr(maskattn, cls))


@pytest.mark.parametrize("cls", CLASSES)
def test_stub_class_declares_every_public_runtime_member(stub, cls):
    runtime = getattr(maskattn, cls)
    declared = set(stub_members(stub, cls))
    runtime_public = {n for n in dir(runtime) if not n.startswith("_")}
    assert runtime_public <= declared, runtime_public - declared
    assert declared <= set(dir(runtime)), declared - set(dir(runtime))


def test_the_mask_class_is_checked_too():
    # Mask's methods are among those compared above.
    assert {("Mask", m) for m in ("__init__", "__and__", "describe", "materialize")} <= set(
        CLASS_METHODS
    )


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_every_runtime_function_has_a_docstring(name):
    fn = getattr(maskattn, name)
    # nanobind puts the signature on the first line of __doc__; the
    # docstring proper is the per-overload text in __nb_signature__.
    doc = fn.__nb_signature__[0][1]
    assert doc and doc.strip(), f"{name} has no docstring"
    assert doc.strip() in fn.__doc__


@pytest.mark.parametrize("cls", CLASSES)
def test_classes_and_their_public_methods_have_docstrings(cls):
    runtime = getattr(maskattn, cls)
    assert runtime.__doc__ and runtime.__doc__.strip(), f"{cls} has no docstring"
    for name, value in vars(runtime).items():
        if name.startswith("_") and name not in ("__call__", "__and__"):
            continue
        if isinstance(value, property):
            doc = value.__doc__
            # Plain attribute-like properties of the modules (sizes) may go without.
            if cls != "Mask":
                continue
        elif hasattr(value, "__nb_signature__"):
            doc = value.__nb_signature__[0][1]
        else:
            continue
        assert doc and doc.strip(), f"{cls}.{name} has no docstring"


def test_stub_functions_and_classes_have_docstrings(stub):
    # The stub's documentation of each runtime name (an overload set needs it
    # on one of its defs), of each class, and of each public method of Mask.
    missing = []
    for name, defs in stub_functions(stub.body).items():
        if not any(ast.get_docstring(d) for d in defs):
            missing.append(name)
    for cls in CLASSES:
        if not ast.get_docstring(stub_class(stub, cls)):
            missing.append(cls)
    members = stub_functions(stub_class(stub, "Mask").body)
    for name in ("describe", "materialize", "allows_all"):
        if not any(ast.get_docstring(d) for d in members[name]):
            missing.append(f"Mask.{name}")
    assert not missing, missing


# ---- maskattn.viz (viz.py, described by viz.pyi) ----------------------------

VIZ_STUB_PATH = pathlib.Path(maskattn.__file__).parent / "viz.pyi"


@pytest.fixture(scope="module")
def viz_stub() -> ast.Module:
    assert VIZ_STUB_PATH.is_file(), f"no stub next to maskattn/viz.py: {VIZ_STUB_PATH}"
    return ast.parse(VIZ_STUB_PATH.read_text(encoding="utf-8"), filename=str(VIZ_STUB_PATH))


def python_params(fn) -> list[Param]:
    """The parameters of a plain Python function, as params_of gives them."""
    import inspect

    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: "positional_only",
        inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
        inspect.Parameter.KEYWORD_ONLY: "keyword_only",
    }
    out = []
    for p in inspect.signature(fn).parameters.values():
        has_default = p.default is not inspect.Parameter.empty
        out.append(Param(p.name, kinds[p.kind], has_default, p.default if has_default else None))
    return out


def test_viz_stub_declares_exactly_the_public_names(viz_stub):
    assert set(stub_functions(viz_stub.body)) == set(maskattn.viz.__all__)
    for name in maskattn.viz.__all__:
        fn = getattr(maskattn.viz, name)
        if hasattr(fn, "__nb_signature__"):
            assert fn is getattr(ext.viz, name), name


@pytest.mark.parametrize("name", sorted(maskattn.viz.__all__))
def test_viz_function_parameters_and_docstrings_match_the_runtime(viz_stub, name):
    (d,) = stub_functions(viz_stub.body)[name]
    fn = getattr(maskattn.viz, name)
    if hasattr(fn, "__nb_signature__"):
        (runtime,) = runtime_overloads(fn)
        doc = fn.__nb_signature__[0][1]
    else:
        runtime = python_params(fn)
        doc = fn.__doc__
    assert comparable(stub_params(d)) == comparable(runtime), f"viz.{name}"
    assert doc and doc.strip(), f"viz.{name} has no docstring"
    assert ast.get_docstring(d), f"viz.{name} has no docstring in the stub"


# ---- maskattn.optim (optim.py, described by optim.pyi) ----------------------

OPTIM_STUB_PATH = pathlib.Path(maskattn.__file__).parent / "optim.pyi"
OPTIM_CLASSES = sorted(
    n for n in maskattn.optim.__all__ if isinstance(getattr(maskattn.optim, n), type)
)
OPTIM_FUNCTIONS = sorted(set(maskattn.optim.__all__) - set(OPTIM_CLASSES))
OPTIM_METHODS = [
    (c, m) for c in OPTIM_CLASSES for m in runtime_methods(getattr(maskattn.optim, c))
]


@pytest.fixture(scope="module")
def optim_stub() -> ast.Module:
    assert OPTIM_STUB_PATH.is_file(), f"no stub next to maskattn/optim.py: {OPTIM_STUB_PATH}"
    return ast.parse(OPTIM_STUB_PATH.read_text(encoding="utf-8"), filename=str(OPTIM_STUB_PATH))


def test_optim_stub_declares_exactly_the_public_names(optim_stub):
    declared = set(stub_functions(optim_stub.body)) | {
        n.name for n in optim_stub.body if isinstance(n, ast.ClassDef)
    }
    assert declared == set(maskattn.optim.__all__)
    for name in maskattn.optim.__all__:
        assert getattr(maskattn.optim, name) is getattr(ext.optim, name), name
    assert {"Adam", "AdamW"} <= set(OPTIM_CLASSES)


@pytest.mark.parametrize("name", OPTIM_FUNCTIONS)
def test_optim_function_parameters_and_docstrings_match_the_runtime(optim_stub, name):
    (d,) = stub_functions(optim_stub.body)[name]
    fn = getattr(maskattn.optim, name)
    (runtime,) = runtime_overloads(fn)
    assert comparable(stub_params(d)) == comparable(runtime), f"optim.{name}"
    assert fn.__nb_signature__[0][1].strip(), f"optim.{name} has no docstring"
    assert ast.get_docstring(d), f"optim.{name} has no docstring in the stub"


@pytest.mark.parametrize(("cls", "method"), OPTIM_METHODS)
def test_optim_method_parameters_match_the_runtime(optim_stub, cls, method):
    defs = stub_functions(stub_class(optim_stub, cls).body).get(method)
    assert defs, f"optim.{cls}.{method} not in the stub"
    (runtime,) = runtime_overloads(getattr(getattr(maskattn.optim, cls), method))
    for d in defs:
        assert comparable(drop_self(stub_params(d))) == comparable(drop_self(runtime))


@pytest.mark.parametrize("cls", OPTIM_CLASSES)
def test_optim_class_members_match_the_runtime(optim_stub, cls):
    runtime = getattr(maskattn.optim, cls)
    members = stub_members(optim_stub, cls)
    stub_props = {fn.name for defs in members.values() for fn in defs if is_property(fn)}
    assert stub_props == runtime_properties(runtime)
    runtime_public = {n for n in dir(runtime) if not n.startswith("_")}
    assert runtime_public <= set(members), runtime_public - set(members)
    assert set(members) <= set(dir(runtime)), set(members) - set(dir(runtime))
    assert runtime.__doc__ and runtime.__doc__.strip()
    assert ast.get_docstring(stub_class(optim_stub, cls))
