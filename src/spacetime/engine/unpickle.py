"""Reading back what DBOS recorded, without trusting the database: a restricted unpickler.

DBOS keeps every workflow's inputs, step outputs and errors in its system schema as base64 pickles, and unpickles
them when a run resumes, a worker dequeues a book or a model call, or a replay reads a step. A plain
``pickle.loads`` runs whatever callable a pickle names, so anyone able to write one row of the ``dbos`` schema could
run code in every worker. :func:`loads` only rebuilds what Space Time records: containers and scalars, ``UUID``,
dates, our own dataclasses and enums, and exceptions of modules already imported (never importing a module a row
names). Anything else is refused with :class:`UnsafePickle`.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import pickle
import sys
from typing import Any

ALLOWED: frozenset[tuple[str, str]] = frozenset({
    *(("builtins", n) for n in ("set", "frozenset", "tuple", "list", "dict", "bytes", "bytearray", "complex",
                                "slice", "range", "bool", "int", "float", "str")),
    ("uuid", "UUID"), ("uuid", "SafeUUID"),
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"), ("datetime", "timedelta"),
    ("datetime", "timezone"), ("decimal", "Decimal"), ("collections", "OrderedDict"),
})  # fmt: skip
"""Classes outside our package a record may hold."""

OUR_PACKAGE = "spacetime"


class UnsafePickle(pickle.UnpicklingError):
    """Raised when a recorded pickle names something Space Time never records (a function, a class with effects)."""


def allowed(module: str, name: str) -> Any:
    """The class ``module.name`` if a record may rebuild it; raises :class:`UnsafePickle` otherwise."""
    if (module, name) in ALLOWED:
        return getattr(sys.modules[module] if module in sys.modules else __import__(module), name)
    loaded = sys.modules.get(module)  # never import a module a row names: importing runs its code
    found = getattr(loaded, name, None) if loaded is not None and "." not in name else None
    if isinstance(found, type):
        if issubclass(found, BaseException):
            return found
        ours = module == OUR_PACKAGE or module.startswith(OUR_PACKAGE + ".")
        if ours and (dataclasses.is_dataclass(found) or issubclass(found, enum.Enum)):
            return found
    raise UnsafePickle(f"a durable record names {module}.{name}, which Space Time never records: refused")


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return allowed(module, name)


def loads(data: bytes) -> Any:
    """``pickle.loads`` for records: only the classes :func:`allowed` accepts."""
    return _Restricted(io.BytesIO(data)).load()
