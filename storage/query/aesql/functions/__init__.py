"""The translations of the documented functions, one family a module; `Translator`
inherits them all. A function `name` is translated by the method `_f_name(call, args,
scope)`, which gets the translated arguments and returns a typed SQLite expression."""

from .aggregates import AggregateFunctions
from .bits import BitFunctions
from .numbers import NumberFunctions
from .strings import StringFunctions
from .time import TimeFunctions

__all__ = ["AggregateFunctions", "BitFunctions", "NumberFunctions", "StringFunctions",
           "TimeFunctions"]
