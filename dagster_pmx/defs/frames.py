"""ibis results as the frames DuckDB's own ``.df()`` gave, nullable columns included.

The library was written and tested against ``.df()``'s frames; ibis's results differ in dtypes
where a column is a date (seconds rather than microseconds) or holds NULLs (an integer column as
``float64``, a boolean one as ``object``, where ``.df()`` gives pandas' nullable ``IntN`` and
``boolean``). :func:`as_frame` converts them back, so a read written in ibis hands the library
the same frame its SQL did.
"""

from __future__ import annotations

import ibis.expr.types as ir
import pandas as pd


def as_frame(expr: ir.Table) -> pd.DataFrame:
    """``expr`` executed, with the dtypes ``.df()`` gives: dates and timestamps as ``datetime64[us]``
    (a nanosecond timestamp stays in nanoseconds), and integer and boolean columns holding NULLs as
    pandas' nullable ``IntN`` and ``boolean``.

    Through Arrow rather than ``expr.to_pandas()``: ibis's own conversion costs ~30 ms more on a
    wide frame (marts.features), which the daily refresh would pay on every run.
    """
    frame = expr.to_pyarrow().to_pandas(date_as_object=False)
    for name, dtype in expr.schema().items():
        column = frame[name]
        if dtype.is_date() or (dtype.is_timestamp() and dtype.scale != 9):
            if column.dtype != "datetime64[us]":
                frame[name] = column.astype("datetime64[us]")
        elif dtype.is_integer() and pd.api.types.is_float_dtype(column.dtype):
            frame[name] = column.astype(f"{'U' if dtype.is_unsigned_integer() else ''}Int{dtype.nbytes * 8}")
        elif dtype.is_boolean() and column.dtype == object:
            frame[name] = column.astype("boolean")
    return frame
