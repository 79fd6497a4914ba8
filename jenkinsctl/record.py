"""Record: the frozen value classes of the build and push path, as dataclasses without their import-time cost.

``@dataclass(frozen=True)`` writes six methods of each class as source text
and compiles them when the module is imported, after importing ``inspect``
(with ``ast``, ``dis`` and ``tokenize``) to do it: with the config's and the
build's classes that was a fifth of what an unchanged ``jenkinsctl build``
adds to the docker CLI's own time.  A ``Record`` subclass gets the same
methods, written once here: ``__init__`` taking the fields in order with
their defaults (``field(default_factory=...)`` too), ``repr``, ``==`` and
``hash`` over the fields (``compare=False`` and ``repr=False`` leave one
out), and ``dataclasses.FrozenInstanceError`` on assignment unless the
class says ``frozen=False``.  It is still a dataclass to the
``dataclasses`` module: ``fields``, ``replace``, ``asdict`` and
``is_dataclass`` find its ``__dataclass_fields__``, made by ``dataclasses``
itself the first time one of them asks.  mypy sees each subclass as the
dataclass it is (``dataclass_transform``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs more to import than these classes
if TYPE_CHECKING:
    from dataclasses import Field
    from typing import Any, ClassVar

    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_kwargs):
        return lambda obj: obj


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class _FieldSpec:
    """What ``field()`` says about one field, until its class is made."""

    __slots__ = ("default", "default_factory", "repr", "compare")

    def __init__(self, default: Any, default_factory: Any, repr: bool, compare: bool) -> None:
        self.default, self.default_factory, self.repr, self.compare = default, default_factory, repr, compare


def field(*, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True,  # noqa: A002
          compare: bool = True) -> Any:
    """``dataclasses.field`` for a Record: a default or a factory of one,
    and whether the field shows in repr and takes part in == and hash."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _FieldSpec(default, default_factory, repr, compare)


class _DataclassFields:
    """``__dataclass_fields__`` on first use: the ``dataclasses`` module
    makes the Field objects of a class with the same fields, and they are
    kept on the Record class in place of this descriptor."""

    def __get__(self, obj: Any, cls: Any) -> dict[str, Field[Any]]:
        import dataclasses

        spec: dict[str, _FieldSpec] = cls.__dict__["__record_fields__"]
        twin = dataclasses.make_dataclass(
            cls.__name__,
            [(name, cls.__record_types__[name],
              dataclasses.field(default=s.default if s.default is not MISSING else dataclasses.MISSING,
                                default_factory=(s.default_factory if s.default_factory is not MISSING
                                                 else dataclasses.MISSING),
                                repr=s.repr, compare=s.compare))
             for name, s in spec.items()],
            frozen=cls.__record_frozen__)
        made = vars(twin)
        fields: dict[str, Field[Any]] = made["__dataclass_fields__"]
        type.__setattr__(cls, "__dataclass_fields__", fields)
        type.__setattr__(cls, "__dataclass_params__", made["__dataclass_params__"])
        return fields


def _frozen_error(name: str) -> Exception:
    import dataclasses

    return dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Record:
    """Base of a dataclass-like value class; see the module's docstring.
    ``class Name(Record, frozen=False)`` makes one whose fields may change."""

    __record_fields__: ClassVar[dict[str, _FieldSpec]] = {}
    __record_types__: ClassVar[dict[str, Any]] = {}
    __record_frozen__: ClassVar[bool] = True
    __record_compare__: ClassVar[tuple[str, ...]] = ()
    __record_repr__: ClassVar[tuple[str, ...]] = ()
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]] = _DataclassFields()  # type: ignore[assignment]

    def __init_subclass__(cls, frozen: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The fields of the bases first, then this class's own in the order
        # written, a redefined one keeping its place: dataclasses' order.
        fields = dict(cls.__record_fields__)
        types = dict(cls.__record_types__)
        own = cls.__dict__.get("__annotations__", {})
        for name, annotation in own.items():
            value = cls.__dict__.get(name, MISSING)
            spec = value if isinstance(value, _FieldSpec) else _FieldSpec(value, MISSING, True, True)
            fields[name], types[name] = spec, annotation
            if isinstance(value, _FieldSpec):
                # As dataclasses leaves it: the default as the class attribute, none for a factory.
                if spec.default is MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, spec.default)
        if own:
            seen_default = ""
            for name, spec in fields.items():
                if spec.default is not MISSING or spec.default_factory is not MISSING:
                    seen_default = name
                elif seen_default:
                    raise TypeError(f"non-default argument {name!r} follows default argument")
        cls.__record_fields__, cls.__record_types__, cls.__record_frozen__ = fields, types, frozen
        cls.__dataclass_fields__ = _DataclassFields()  # type: ignore[assignment]
        type.__setattr__(cls, "__match_args__", tuple(fields))
        cls.__record_compare__ = tuple(n for n, s in fields.items() if s.compare)
        cls.__record_repr__ = tuple(n for n, s in fields.items() if s.repr)
        if not frozen:
            cls.__hash__ = None  # type: ignore[assignment]  # eq without frozen: unhashable, as a dataclass

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        fields = cls.__record_fields__
        if len(args) > len(fields):
            raise TypeError(f"{cls.__qualname__}.__init__() takes {len(fields) + 1} positional arguments but "
                            f"{len(args) + 1} were given")
        values = self.__dict__
        missing = []
        for i, (name, spec) in enumerate(fields.items()):
            if i < len(args):
                if name in kwargs:
                    raise TypeError(f"{cls.__qualname__}.__init__() got multiple values for argument {name!r}")
                values[name] = args[i]
            elif name in kwargs:
                values[name] = kwargs.pop(name)
            elif spec.default is not MISSING:
                values[name] = spec.default
            elif spec.default_factory is not MISSING:
                values[name] = spec.default_factory()
            else:
                missing.append(name)
        if kwargs:
            raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected keyword argument "
                            f"{next(iter(kwargs))!r}")
        if missing:
            raise TypeError(f"{cls.__qualname__}.__init__() missing {len(missing)} required argument"
                            f"{'s' if len(missing) > 1 else ''}: {', '.join(map(repr, missing))}")

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={self.__dict__[n]!r}" for n in type(self).__record_repr__)
        return f"{type(self).__qualname__}({shown})"

    def _compared(self) -> tuple:
        return tuple(self.__dict__[n] for n in type(self).__record_compare__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._compared() == other._compared()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._compared())

    def __setattr__(self, name: str, value: Any) -> None:
        if type(self).__record_frozen__:
            raise _frozen_error(name)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if type(self).__record_frozen__:
            raise _frozen_error(name)
        object.__delattr__(self, name)


def asdict(obj: Any) -> Any:
    """``dataclasses.asdict`` for Records: a dict of the fields, with
    Records, lists, tuples and dicts inside converted and copied the same
    way, and any other value deep-copied."""
    if isinstance(obj, Record):
        return {name: asdict(obj.__dict__[name]) for name in type(obj).__record_fields__}
    if isinstance(obj, (str, int, float, bool, type(None))):
        return obj
    if isinstance(obj, list):
        return [asdict(v) for v in obj]
    if isinstance(obj, tuple):
        return type(obj)(*[asdict(v) for v in obj]) if hasattr(obj, "_fields") else tuple(asdict(v) for v in obj)
    if isinstance(obj, dict):
        return type(obj)((asdict(k), asdict(v)) for k, v in obj.items())
    import copy
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return copy.deepcopy(obj)


def replace(obj: Any, /, **changes: Any) -> Any:
    """``dataclasses.replace`` for a Record: a new one with ``changes``."""
    return type(obj)(**{**{name: obj.__dict__[name] for name in type(obj).__record_fields__}, **changes})
