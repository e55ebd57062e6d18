"""A secret value that cannot leak by accident through repr, str, format, logging or pickle."""

from __future__ import annotations

import hmac
from typing import NoReturn

_MASK = "SecretValue(***)"


class SecretValue:
    """Holds one secret for the duration of the call that needs it.

    ``repr``, ``str``, f-strings and ``%``-formatting all render ``SecretValue(***)``; the
    only way to the plain text is :meth:`reveal`, which makes every use greppable. It
    refuses pickling and copying into JSON by accident (it is not a ``str``). Compare with
    ``==`` (constant time). Python cannot wipe a string from memory, so the rule is
    structural: Stella never caches values; callers drop them when the call returns.
    """

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("SecretValue holds a str")
        self.__value = value

    def reveal(self) -> str:
        """The plain text. Use it only as an argument to the call that needs it."""
        return self.__value

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return _MASK

    def __bool__(self) -> bool:
        return bool(self.__value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretValue):
            return hmac.compare_digest(self.__value.encode(), other.__value.encode())
        return NotImplemented

    def __hash__(self) -> int:  # equal values hash equal, but the hash reveals nothing useful
        return hash((SecretValue, len(self.__value)))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue is never pickled or copied out of the process")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a SecretValue is never pickled or copied out of the process")
