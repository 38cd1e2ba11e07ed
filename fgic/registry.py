"""One string registry for everything looked up by name: models, losses, data sets, transform presets.

``Registry(kind)`` maps a name to a factory (a function or a class), with the paper it belongs to, a
one-line description (the first line of the factory's docstring unless given), aliases, and deprecated
aliases that still resolve but warn with the new name::

    MODELS = Registry("model", loader=lambda: importlib.import_module("fgic.models.zoo"))

    @MODELS.register("resnet50_ca_units", paper="001", deprecated=("ca_resnet50",))
    def resnet50_ca_units(num_classes, pretrained=False, **kw):
        '''ResNet-50 with SE channel attention in every bottleneck unit.'''

    MODELS.get("ca_resnet50")  # the same factory, with a DeprecationWarning naming "resnet50_ca_units"
    MODELS.get("resnet50_ca_unit")  # KeyError: unknown model ...; did you mean 'resnet50_ca_units'? ...
    MODELS.list("units")  # registered names containing "units" (or matching a glob such as "resnet50_*_top")

``loader`` (optional) imports the modules whose decorators fill the registry; it runs once, on the first
look-up or listing, so importing a package stays cheap. ``python -m fgic list models|losses|datasets|transforms``
prints the tables.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Entry", "Registry"]


@dataclass(frozen=True)
class Entry:
    """One registered name: its factory, paper tag, one-line description, aliases and deprecated aliases."""

    name: str
    factory: Callable[..., Any]
    paper: str = ""
    description: str = ""
    aliases: tuple[str, ...] = ()
    deprecated: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def first_doc_line(obj: Any) -> str:
    """First line of ``obj``'s own docstring ("" when it has none; a ``functools.partial`` has none)."""
    doc = obj.__doc__ if inspect.isfunction(obj) or inspect.isclass(obj) else None
    return inspect.cleandoc(doc).splitlines()[0].strip() if doc and doc.strip() else ""


class Registry:
    """A name -> factory table for one ``kind`` of thing ("model", "loss", "data set", ...)."""

    def __init__(self, kind: str, loader: Callable[[], Any] | None = None):
        self.kind = kind
        self._loader = loader
        self._loaded = loader is None
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}  # alias -> name
        self._deprecated: dict[str, str] = {}  # deprecated alias -> name

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} names)"

    # ------------------------------------------------------------------ registering

    def register(
        self,
        name: str,
        *,
        paper: str = "",
        aliases: tuple[str, ...] | list[str] = (),
        deprecated: tuple[str, ...] | list[str] = (),
        description: str | None = None,
        **extra,
    ) -> Callable:
        """Decorator: ``@REG.register("name", paper="001", aliases=(...), deprecated=(...))`` on a factory.

        ``description`` defaults to the first line of the factory's docstring; ``extra`` is kept on the entry.
        Registering a name or alias twice raises ``ValueError``.
        """

        def deco(factory: Callable) -> Callable:
            self.add(name, factory, paper=paper, aliases=aliases, deprecated=deprecated, description=description,
                     **extra)
            return factory

        return deco

    def add(self, name: str, factory: Callable, *, paper: str = "", aliases=(), deprecated=(),
            description: str | None = None, **extra) -> Entry:
        """``register`` without the decorator; returns the new entry."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        self._check_free(name)
        for a in (*aliases, *deprecated):
            self._check_free(a)
        desc = first_doc_line(factory) if description is None else description
        entry = Entry(name, factory, paper, desc, tuple(aliases), tuple(deprecated), dict(extra))
        self._entries[name] = entry
        self._aliases.update((a, name) for a in aliases)
        self._deprecated.update((a, name) for a in deprecated)
        return entry

    def deprecate(self, old: str, new: str) -> None:
        """Keep ``old`` as a deprecated alias of the registered ``new`` (warns with the new name on use)."""
        if new not in self._entries:
            raise KeyError(f"cannot deprecate {old!r}: {self.kind} {new!r} is not registered")
        self._check_free(old)
        self._deprecated[old] = new
        e = self._entries[new]
        self._entries[new] = Entry(e.name, e.factory, e.paper, e.description, e.aliases, (*e.deprecated, old),
                                   e.extra)

    def _check_free(self, name: str) -> None:
        if name in self._entries or name in self._aliases or name in self._deprecated:
            raise ValueError(f"{self.kind} {name!r} is already registered")

    # ------------------------------------------------------------------ looking up

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # set first: the loader's imports register into this registry
            try:
                self._loader()
            except BaseException:
                self._loaded = False
                raise

    def resolve(self, name: str, stacklevel: int = 2) -> str:
        """The registered name behind ``name`` (itself, an alias's target, or a deprecated alias's target,
        with a ``DeprecationWarning``). Unknown names raise ``KeyError`` with the closest matches."""
        self._load()
        if isinstance(name, str):
            if name in self._entries:
                return name
            if name in self._aliases:
                return self._aliases[name]
            if name in self._deprecated:
                new = self._deprecated[name]
                warnings.warn(f"{self.kind} name {name!r} is deprecated; use {new!r}", DeprecationWarning,
                              stacklevel=stacklevel + 1)
                return new
        raise KeyError(self.unknown_message(name))

    def unknown_message(self, name: Any) -> str:
        """``unknown <kind> 'x'; did you mean 'y'? <how to list>``: the text of the look-up error."""
        known = [*self._entries, *self._aliases, *self._deprecated]
        close = difflib.get_close_matches(str(name), known, n=8, cutoff=0.5)
        close = list(dict.fromkeys(self._target(c) for c in close))[:5]  # aliases suggest their new name
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        names = sorted(self._entries)
        listing = f"available: {names}" if len(names) <= 12 else f"{len(names)} names in all (python -m fgic list)"
        return f"unknown {self.kind} {name!r}; {hint}{listing}"

    def get(self, name: str) -> Callable:
        """The factory registered under ``name`` (or one of its aliases)."""
        return self._entries[self.resolve(name, stacklevel=3)].factory

    __getitem__ = get

    def entry(self, name: str) -> Entry:
        """The ``Entry`` of ``name`` (aliases resolve, without a warning)."""
        self._load()
        target = self._target(name)
        if target is None:
            raise KeyError(self.unknown_message(name))
        return self._entries[target]

    def _target(self, name: str) -> str | None:
        if name in self._entries:
            return name
        return self._aliases.get(name) or self._deprecated.get(name)

    def describe(self, name: str) -> str:
        """The one-line description of ``name``."""
        return self.entry(name).description

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries or name in self._aliases or name in self._deprecated

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def list(self, pattern: str = "") -> list[str]:
        """Registered names (no aliases), sorted, containing ``pattern`` (a glob when it has ``*?[``)."""
        self._load()
        if any(c in pattern for c in "*?["):
            return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))
        return sorted(n for n in self._entries if pattern in n)

    def entries(self, pattern: str = "") -> list[Entry]:
        """The ``Entry`` of every name of ``list(pattern)``."""
        return [self._entries[n] for n in self.list(pattern)]

    def table(self, pattern: str = "") -> str:
        """Plain text, one line per name: name, paper tag, description, then its aliases in brackets."""
        rows = [("name", "paper", "description [aliases]")]
        for e in self.entries(pattern):
            aliases = [*e.aliases, *(f"{a} (deprecated)" for a in e.deprecated)]
            desc = (e.description or "-") + (f" [{', '.join(aliases)}]" if aliases else "")
            rows.append((e.name, e.paper or "-", desc))
        w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
        return "\n".join(f"{n:<{w0}}  {p:<{w1}}  {d}" for n, p, d in rows)
