"""Slotted record classes for the protocol core, without :mod:`dataclasses`.

Why not ``@dataclass``: :mod:`pyvrrp.proto` is what a restarted daemon runs
first (:mod:`pyvrrp.runtime.fast_start`), and a preferred node at 10 ms
adverts preempts back one Master_Down_Interval (~34 ms) after it starts
listening.  ``dataclasses`` imports :mod:`inspect` (and with it ``ast``,
``dis``, ``tokenize``: 5-10 ms here) and builds each class with six ``exec``
calls; the core's 19 record types cost ~0.5 ms each.  :func:`record` gives a
class the methods a ``@dataclass(frozen=..., slots=True)`` would, in ~0.07 ms:
only ``__init__`` is compiled per class (its signature is the fields), the
other methods are shared functions driven by the class's field names.

What a record class gets: ``__slots__``, ``__init__`` (defaults,
``field(default_factory=...)``, ``__post_init__`` if defined),
``__repr__``, ``__eq__`` (same class only, fields with ``compare=True``),
``__match_args__``; when ``frozen``: ``__hash__``, assignment raising
:class:`FrozenRecordError` (an ``AttributeError``, like dataclasses'
``FrozenInstanceError``), and pickling/copying support.  Use
:func:`replace` / :func:`fields` / :func:`asdict` where code would call the
``dataclasses`` functions.  Record classes must not be subclassed, and a
record must not inherit from a class with fields of its own.
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False  # mypy reads it as True; no ``typing`` import at run time (start-up cost)

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:

    def dataclass_transform(**_kwargs):
        return lambda fn: fn


__all__ = ["FrozenRecordError", "asdict", "field", "fields", "is_record", "record", "replace"]


class FrozenRecordError(AttributeError):
    """Assignment to a field of a frozen record."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class _Field:
    __slots__ = ("compare", "default", "default_factory")

    def __init__(self, default: Any, default_factory: Any, compare: bool) -> None:
        self.default = default
        self.default_factory = default_factory
        self.compare = compare


def field(
    *, default: Any = _MISSING, default_factory: Callable[[], Any] = _MISSING, compare: bool = True
) -> Any:
    """A field with a default factory, or left out of ``==`` and ``hash``."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("field() takes default or default_factory, not both")
    return _Field(default, default_factory, compare)


@dataclass_transform(field_specifiers=(field,))
def record(*, frozen: bool) -> Callable[[type[_T]], type[_T]]:
    """Class decorator: make ``cls`` a slotted record (see the module docstring)."""

    def wrap(cls: type[_T]) -> type[_T]:
        return _build(cls, frozen)

    return wrap


def _build(cls: type, frozen: bool) -> type:
    for base in cls.__mro__[1:]:
        if "__record_fields__" in base.__dict__:
            raise TypeError(f"{cls.__name__}: a record class cannot inherit from record {base.__name__}")
    names: list[str] = []
    compared: list[str] = []
    ns: dict[str, Any] = {"__MISSING": _MISSING, "__setattr": object.__setattr__}
    params: list[str] = []
    body: list[str] = []
    seen_default = ""
    # the class's own annotations (inspect.get_annotations: inspect is what this module avoids)
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if isinstance(annotation, str) and annotation.startswith(("ClassVar", "typing.ClassVar")):
            continue
        names.append(name)
        value = cls.__dict__.get(name, _MISSING)
        spec = value if isinstance(value, _Field) else _Field(value, _MISSING, True)
        if spec.compare:
            compared.append(name)
        if spec.default_factory is not _MISSING:
            ns[f"__f_{name}"] = spec.default_factory
            params.append(f"{name}=__MISSING")
            body.append(f"  if {name} is __MISSING: {name} = __f_{name}()")
            seen_default = name
        elif spec.default is not _MISSING:
            ns[f"__d_{name}"] = spec.default
            params.append(f"{name}=__d_{name}")
            seen_default = name
        else:
            if seen_default:
                raise TypeError(f"{cls.__name__}: field {name!r} without a default follows {seen_default!r}")
            params.append(name)
        body.append(f"  __setattr(self, {name!r}, {name})" if frozen else f"  self.{name} = {name}")
    if "__post_init__" in cls.__dict__:
        body.append("  self.__post_init__()")
    qualname = cls.__qualname__
    src = [
        f"def __init__(self, {', '.join(params)}):" if params else "def __init__(self):",
        *(body or ["  pass"]),
    ]
    exec("\n".join(src), ns)
    init = ns["__init__"]
    init.__qualname__ = f"{qualname}.__init__"
    init.__module__ = cls.__module__
    own = cls.__dict__
    attrs = {k: v for k, v in own.items() if k not in names and k not in ("__dict__", "__weakref__")}
    attrs["__init__"] = init
    # As dataclasses do: a __repr__ / __eq__ / __hash__ the class body defines is kept
    # (a body that defines __eq__ gets __hash__ = None from Python: that is not explicit).
    for name, method in (("__repr__", _repr), ("__eq__", _eq)):
        if name not in own:
            attrs[name] = method
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    if frozen:
        attrs.update(
            __setattr__=_setattr, __delattr__=_delattr, __getstate__=_getstate, __setstate__=_setstate
        )
    if not explicit_hash:
        # frozen: hashed like its == ; mutable and compared by value: unhashable (as dataclasses)
        attrs["__hash__"] = _hash if frozen else None
    attrs["__slots__"] = attrs["__match_args__"] = attrs["__record_fields__"] = tuple(names)
    attrs["__record_key__"] = attrgetter(*compared) if compared else staticmethod(_no_key)
    attrs["__qualname__"] = qualname
    return type(cls)(cls.__name__, cls.__bases__, attrs)


# The methods every record shares: only __init__ is generated per class (compiling
# the others per class cost ~0.1 ms each time, which is what this module avoids).


def _no_key(_self: Any) -> tuple[()]:
    return ()


def _repr(self: Any) -> str:
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_fields__)
    return f"{self.__class__.__qualname__}({inner})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        return self.__record_key__(self) == self.__record_key__(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(self.__record_key__(self))


def _setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenRecordError(f"cannot assign to field {name!r}")


def _delattr(self: Any, name: str) -> None:
    raise FrozenRecordError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, n) for n in self.__record_fields__]


def _setstate(self: Any, state: list[Any]) -> None:
    for name, value in zip(self.__record_fields__, state, strict=True):
        object.__setattr__(self, name, value)


def is_record(obj: object) -> bool:
    """True for a record instance (not the class)."""
    return not isinstance(obj, type) and hasattr(type(obj), "__record_fields__")


def fields(obj: object) -> tuple[str, ...]:
    """The field names of a record class or instance, in declaration order."""
    names = getattr(obj, "__record_fields__", None)
    if names is None:
        raise TypeError(f"{obj!r} is not a record")
    return names  # type: ignore[no-any-return]


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of the record ``obj`` with ``changes`` applied (like ``dataclasses.replace``)."""
    for name in fields(obj):
        if name not in changes:
            changes[name] = getattr(obj, name)
    return obj.__class__(**changes)


def asdict(obj: object) -> dict[str, Any]:
    """The fields of a record as a dict (one level: values are not converted)."""
    return {name: getattr(obj, name) for name in fields(obj)}
