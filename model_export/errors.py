"""Errors of the export tool, named for what the caller should do.

Every class here is a user-facing failure with a complete message: the CLI prints it on
stderr and exits with status 2, no traceback. Bundle rejections found while verifying
come from ``edgetwin_contracts.errors`` (the device raises the same ones).
"""

from __future__ import annotations

from pathlib import Path

from edgetwin_common.errors import EdgetwinError


class ExportError(EdgetwinError):
    """A failure the user fixes by changing the input or the options; the message says how."""


class DatasetInvalid(ExportError):
    """The dataset CSV cannot be used: fix the file at the named line and column.

    Attributes:
        path: the CSV file.
        line: 1-based physical line in the file (the header is line 1), or None when the
            problem is the file as a whole (missing, too few rows).
        column: the column name, or None when the problem is not a single cell.
        detail: what is wrong, without the location.
    """

    def __init__(
        self, path: Path | str, detail: str, *, line: int | None = None, column: str | None = None
    ) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        self.detail = detail
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"dataset {where}: {detail}")


class ModelInvalid(ExportError):
    """A saved Keras model (or its training sidecar) is missing or not what convert needs."""


class TrainingFailed(ExportError):
    """Training produced no usable model (loss not finite, no windows): change the data or
    the settings and train again."""


class ConversionRefused(ExportError):
    """The int8 model loses too much accuracy against float32 on the held-out windows.

    Retrain, give more representative data, or raise ``--max-int8-increase`` knowingly.
    The message gives both MAEs and the bound.
    """

    def __init__(self, float32_mae: float, int8_mae: float, increase: float, bound: float) -> None:
        self.float32_mae = float32_mae
        self.int8_mae = int8_mae
        self.increase = increase
        self.bound = bound
        super().__init__(
            f"int8 conversion refused: held-out MAE is {int8_mae:.5f} (int8) vs "
            f"{float32_mae:.5f} (float32) window-std units, an increase of "
            f"{increase:+.2%}, above the bound of {bound:.2%} (--max-int8-increase)"
        )


class BundleExists(ExportError):
    """The output bundle folder already exists: pass --force to replace it."""


class KeyExists(ExportError):
    """A release key is already there: refusing to overwrite it (a lost key strands a fleet)."""
