"""Domains, and :func:`load_domain`, which finds one by name: a built-in, a plug-in or a file.

A *spec* is one of::

    knowledge                          # a built-in (BUILTIN_DOMAINS: knowledge, arc, codebase)
    tiny                               # an entry point in group "seal.domains" of an installed package
    my_package.domains:StyleDomain     # module:Class (the module must be importable)
    path/to/my_domain.py:StyleDomain   # a file, loaded under a module name of its own

The class must subclass :class:`seal.domains.base.Domain`; it is built with ``cls.from_config(cfg, **options)``
when it has that classmethod, else ``cls(**options)``. Every failure is one
:class:`~seal.domains.base.DomainError` whose one-line message names the spec::

    dom = load_domain("examples/brevity_domain.py:BrevityDomain")
    dom = load_domain("knowledge", cfg, template=load_template("examples/templates/study_notes.toml"))

Importing this package loads no model code: built-ins are referenced by import path and imported only when
asked for.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seal.domains.base import Domain, DomainError

if TYPE_CHECKING:
    from seal.config import SealConfig

__all__ = ["BUILTIN_DOMAINS", "ENTRY_POINT_GROUP", "Domain", "DomainError", "domain_names", "load_domain",
           "resolve_domain_class"]

BUILTIN_DOMAINS: dict[str, str] = {
    "knowledge": "seal.domains.knowledge:KnowledgeDomain",
    "arc": "seal.domains.arc.domain:ArcDomain",
    "codebase": "seal.domains.codebase:CodebaseDomain",
}
"""Built-in domain name -> ``module:Class`` (imported only when loaded)."""

ENTRY_POINT_GROUP = "seal.domains"
_FORMS = "a built-in name, an entry point name, module.path:ClassName or path/to/file.py:ClassName"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """The installed entry points of group ``seal.domains``, by name (the first one wins on a clash)."""
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken distribution's metadata must not make every domain unloadable
        return {}
    out: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in eps:
        out.setdefault(ep.name, ep)
    return out


def domain_names() -> list[str]:
    """Names that :func:`load_domain` accepts without a ``:``: the built-ins, then installed entry points."""
    return list(BUILTIN_DOMAINS) + sorted(n for n in _entry_points() if n not in BUILTIN_DOMAINS)


def _import_module(spec: str, module: str):
    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise DomainError(f"domain {spec!r}: cannot import module {module!r} ({_first_line(exc)})") from exc


def _import_file(spec: str, file: str):
    path = Path(file).expanduser()
    if not path.is_file():
        raise DomainError(f"domain {spec!r}: file not found: {path}")
    if path.suffix != ".py":
        raise DomainError(f"domain {spec!r}: {path} is not a Python file (.py)")
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    name = f"seal_domain_plugin_{''.join(c if c.isalnum() else '_' for c in resolved.stem)}_{digest}"
    cached = sys.modules.get(name)
    if cached is not None and getattr(cached, "__file__", None) == str(resolved):
        return cached
    mod_spec = importlib.util.spec_from_file_location(name, resolved)
    if mod_spec is None or mod_spec.loader is None:
        raise DomainError(f"domain {spec!r}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module  # registered first: dataclasses and pickling look the module up by name
    try:
        mod_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise DomainError(f"domain {spec!r}: importing {path} raised {_first_line(exc)}") from exc
    return module


def _attribute(spec: str, module: Any, where: str, attr: str) -> Any:
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise DomainError(f"domain {spec!r}: {where} has no class {attr!r}") from None
    return obj


def _target(spec: str, target: str) -> Any:
    """The object named by ``module:attr`` or ``file.py:attr``."""
    where, _, attr = target.rpartition(":")  # rpartition: a Windows path keeps its drive letter
    if not where or not attr:
        raise DomainError(f"domain {spec!r}: expected {_FORMS}")
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    module = _import_file(spec, where) if is_file else _import_module(spec, where)
    return _attribute(spec, module, where, attr)


def resolve_domain_class(spec: str) -> type[Domain]:
    """The :class:`Domain` subclass that ``spec`` names (imported, not constructed)."""
    if not isinstance(spec, str) or not spec.strip():
        raise DomainError(f"domain {spec.strip() if isinstance(spec, str) else spec!r}: expected {_FORMS}")
    spec = spec.strip()
    if spec in BUILTIN_DOMAINS:
        obj = _target(spec, BUILTIN_DOMAINS[spec])
    elif ":" in spec:
        obj = _target(spec, spec)
    else:
        eps = _entry_points()
        if spec not in eps:
            hint = (f"; to load a file, name its class: {spec}:ClassName" if spec.endswith(".py") else
                    f"; to load a module's class, write {spec}:ClassName" if "." in spec else "")
            installed = ", ".join(sorted(eps)) or "none"
            raise DomainError(f"domain {spec!r}: unknown domain (built-in: {', '.join(BUILTIN_DOMAINS)}; "
                              f"installed entry points ({ENTRY_POINT_GROUP}): {installed}){hint}")
        try:
            obj = eps[spec].load()
        except Exception as exc:
            raise DomainError(f"domain {spec!r}: entry point {eps[spec].value!r} failed to load "
                              f"({_first_line(exc)})") from exc
    if not (isinstance(obj, type) and issubclass(obj, Domain)):
        what = obj.__name__ if isinstance(obj, type) else type(obj).__name__ + " object"
        raise DomainError(f"domain {spec!r}: {what} is not a subclass of seal.domains.base.Domain")
    return obj


def load_domain(spec: str, cfg: SealConfig | None = None, **options: Any) -> Domain:
    """The domain that ``spec`` names, constructed: ``cls.from_config(cfg, **options)`` when the class has
    that classmethod (``cfg`` defaults to ``SealConfig()``), else ``cls(**options)``. Raises
    :class:`DomainError` naming ``spec`` on any failure (unknown name, import error, missing file or class,
    not a Domain subclass, a constructor that raises)."""
    cls = resolve_domain_class(spec)
    spec = spec.strip()
    from_config = getattr(cls, "from_config", None)
    try:
        if callable(from_config):
            if cfg is None:
                from seal.config import SealConfig

                cfg = SealConfig()
            dom = from_config(cfg, **options)
        else:
            dom = cls(**options)
    except Exception as exc:
        how = f"{cls.__name__}.from_config" if callable(from_config) else cls.__name__
        raise DomainError(f"domain {spec!r}: {how}(...) raised {_first_line(exc)}") from exc
    if not isinstance(dom, Domain):
        raise DomainError(f"domain {spec!r}: {cls.__name__}.from_config returned a {type(dom).__name__}, "
                          "not a Domain")
    return dom
