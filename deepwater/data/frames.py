"""pandas frames in: reading files, picking x and y by name or position, detecting the problem type."""
from __future__ import annotations

import gzip
import os
import re
import warnings
import zlib
from collections.abc import Hashable
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from deepwater.data.images import IMAGE_EXTENSIONS, first_non_image, looks_like_image_column
from deepwater.errors import FrameError, MissingDependencyError, ParameterError, close_matches, first_lines
from deepwater.files import path_text

ColumnRef = str | int


def import_file(path: str | os.PathLike) -> pd.DataFrame:
    """Read a .csv, .csv.gz or .parquet file into a pandas DataFrame, or an image folder laid out as
    class/file.png into a frame of image paths ('uri') and their class ('label', categorical). A file that is
    empty, holds only a header, has ragged rows or is not text is a FrameError naming it."""
    text = path_text(path, "path")
    if not os.path.exists(text):
        raise FrameError(f"path={text!r} does not exist; check the path.")
    if os.path.isdir(text):
        return image_folder(text)
    lower = text.lower()
    if lower.endswith((".csv", ".csv.gz")):
        return _checked_rows(text, _read_csv(text))
    if lower.endswith(".parquet"):
        try:
            frame = pd.read_parquet(text)
        except ImportError as error:
            raise MissingDependencyError("pyarrow (to read parquet)", "parquet") from error
        except (ValueError, OSError) as error:
            raise FrameError(f"path={text!r} is not a readable parquet file ({first_lines(error)}); give a parquet "
                             "file written by pandas or pyarrow, or a .csv.") from error
        return _checked_rows(text, frame)
    raise FrameError(f"path={text!r} has a suffix import_file cannot read; use .csv, .csv.gz or .parquet.")


SNIFF_BYTES = 8192  # how much of a csv is looked at for signs of a binary file
TEXT_CSV = "give a UTF-8 text csv: a header line, then rows"
ROW_FIX = "give every row as many fields as the header (quote values that hold commas, close every quote)"
MAGIC = {b"\x89PNG": ("a PNG image", TEXT_CSV), b"\xff\xd8\xff": ("a JPEG image", TEXT_CSV),
         b"GIF8": ("a GIF image", TEXT_CSV), b"PK\x03\x04": ("a zip archive", "unzip it"),
         b"PAR1": ("a parquet file", "name it .parquet"), b"\x1f\x8b": ("gzip-compressed", "name it .csv.gz")}


def _read_csv(text: str) -> pd.DataFrame:
    """pd.read_csv of `text`, with pandas' and gzip's errors for a bad file turned into a FrameError naming it."""
    try:
        _refuse_binary(text)
        with warnings.catch_warnings():  # pandas warns where index_col=False drops a first row's extra fields
            warnings.filterwarnings("error", "Length of header", pd.errors.ParserWarning)
            return pd.read_csv(text, index_col=False)  # never a first column silently taken as the index
    except pd.errors.ParserWarning as error:
        raise FrameError(f"path={text!r} is not a well-formed csv: its first row has more fields than the header; "
                         f"{ROW_FIX}.") from error
    except pd.errors.EmptyDataError as error:
        raise FrameError(f"path={text!r} is empty ({os.path.getsize(text)} bytes: no header, no rows); "
                         f"{TEXT_CSV}.") from error
    except pd.errors.ParserError as error:
        raise FrameError(f"path={text!r} is not a well-formed csv: {_parser_reason(error)}; {ROW_FIX}.") from error
    except UnicodeDecodeError as error:
        raise FrameError(f"path={text!r} is not UTF-8 text (byte 0x{error.object[error.start]:02x}: {error.reason}); "
                         "save it as UTF-8.") from error
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise FrameError(f"path={text!r} is not a readable gzip file ({first_lines(error)}); compress it with gzip, "
                         "or name it .csv if it is plain text.") from error


def _refuse_binary(text: str) -> None:
    """A FrameError when the start of the csv `text` (decompressed for .gz) is a binary file's."""
    opener = gzip.open if text.lower().endswith(".gz") else open
    with opener(text, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    found = next((found for magic, found in MAGIC.items() if head.startswith(magic)), None)
    if found is None and b"\x00" in head:
        found = ("a binary file (it holds NUL bytes)", TEXT_CSV)
    if found is not None:
        raise FrameError(f"path={text!r} is {found[0]}, not csv text; {found[1]}.")


def _parser_reason(error: Exception) -> str:
    """pandas' ParserError in words: 'line 3 has 3 fields where the header has 2'."""
    reason = first_lines(error)
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", reason)
    if found:
        expected, line, saw = found.groups()
        return f"line {line} has {saw} fields where the header has {expected}"
    return reason.replace("Error tokenizing data. C error: ", "")


def _checked_rows(text: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame read from `text`, or a FrameError when it has no rows (a header alone)."""
    if len(frame) == 0:
        columns = ", ".join(map(repr, list(frame.columns)[:10]))
        raise FrameError(f"path={text!r} has a header ({frame.shape[1]} columns: {columns}) but no rows; "
                         "give at least one data row.")
    return frame


def image_folder(path: str | os.PathLike) -> pd.DataFrame:
    """The images under `path`, one subfolder per class (path/cat/1.png, path/dog/2.jpg): a frame of their paths
    ('uri') and classes ('label', categorical), sorted by class and file name."""
    root = Path(os.fspath(path))
    rows = [(str(file), folder.name) for folder in sorted(p for p in root.iterdir() if p.is_dir())
            for file in sorted(folder.iterdir()) if file.suffix.lower() in IMAGE_EXTENSIONS and file.is_file()]
    if not rows:
        raise FrameError(f"path={str(root)!r} is a folder without images in class subfolders; lay it out as "
                         f"class/file.png (one subfolder per class, images {', '.join(IMAGE_EXTENSIONS)}).")
    frame = pd.DataFrame(rows, columns=["uri", "label"])
    frame["label"] = frame["label"].astype("category")
    return frame


def check_frame(frame: object, name: str) -> pd.DataFrame:
    """The frame itself, or a clear error when it is not a non-empty DataFrame."""
    if not isinstance(frame, pd.DataFrame):
        raise FrameError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}; "
                         "read files with deepwater.import_file or pandas.")
    if len(frame) == 0 or frame.shape[1] == 0:
        raise FrameError(f"{name} is empty ({frame.shape[0]} rows, {frame.shape[1]} columns); give it data.")
    if not frame.columns.is_unique:  # kept with the Index: once per frame, not per call
        duplicated = frame.columns[frame.columns.duplicated()].unique().tolist()
        raise FrameError(f"{name} has duplicate column names {duplicated[:10]}, so a name does not say which column "
                         "it means; rename them (frame.columns = [...]) or keep the first of each "
                         "(frame.loc[:, ~frame.columns.duplicated()]).")
    return frame


CONTAINERS = (list, tuple, set, frozenset, dict, np.ndarray)
FEW_COLUMNS = 16  # up to this many columns to check, each is read on its own; more: one pass over the frame's dtypes


def check_plain_values(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    """A FrameError when one of `columns` holds lists, dicts or other containers instead of single values."""
    for name in _object_columns(frame, columns):  # numbers, categories and strings hold single values
        series = frame[name]
        nested = series.map(lambda value: isinstance(value, CONTAINERS)).to_numpy(dtype=bool)
        if nested.any():
            row = int(np.argmax(nested))
            value = series.iloc[row]
            raise FrameError(f"column {name!r} holds {type(value).__name__} values (first at row "
                             f"{series.index[row]!r}: {str(value)[:60]}); a cell must hold one number, category or "
                             "image URI: expand such values into columns of their own, or drop the column.")


def _object_columns(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Those of `columns` whose dtype is object, in order. Many columns are sorted out in one pass over the frame's
    dtypes by position (iterating a frame's column names, or comparing every dtype with object, is slow)."""
    if len(columns) <= FEW_COLUMNS:
        return [name for name in columns if frame[name].dtype == object]
    found = [i for i, dtype in enumerate(frame.dtypes.to_numpy()) if dtype.kind == "O" and dtype == object]
    objects = set(frame.columns[found]) if found else set()
    return [name for name in columns if name in objects]


def require_columns(frame: pd.DataFrame, needed: Sequence[str], name: str) -> None:
    """A FrameError naming the columns of `needed` that `frame` (called `name`) lacks, with the rename that fixes
    the first one where the frame has a column whose name looks like it."""
    present = set(frame.columns.to_numpy())  # one pass: an Index looks names up one by one at 0.3 us each
    missing = [c for c in dict.fromkeys(needed) if c not in present and c not in frame.columns]
    if not missing:
        return
    wanted = set(needed)
    spare = {str(c): c for c in frame.columns if c not in wanted}  # the frame's columns the model does not read
    renamed = [(spare[close[0]], column) for column in missing[:10] if (close := close_matches(column, spare))]
    hint = ""
    if renamed:
        found, column = renamed[0]
        hint = f" Did you mean {found!r} for {column!r}? Rename it: {name}.rename(columns={{{found!r}: {column!r}}})."
    raise FrameError(f"{name} lacks columns the model was trained on: {missing[:10]}; add them.{hint}")


def column_name(frame: pd.DataFrame, ref: ColumnRef, parameter: str) -> str:
    """The name of a column given by name or 0-based position."""
    columns = frame.columns
    if isinstance(ref, bool) or not isinstance(ref, Hashable):
        raise ParameterError(f"{parameter}={ref!r} is not a column; use a column name or position"
                             f"{' (one column: a name, not a list)' if parameter == 'y' else ''}.")
    if isinstance(ref, int):
        if -len(columns) <= ref < len(columns):
            return columns[ref]
        raise FrameError(f"{parameter}={ref} is out of range: the frame has {len(columns)} columns "
                         f"(positions 0..{len(columns) - 1}).")
    if ref in frame.columns:
        return ref
    close = close_matches(ref, columns)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise FrameError(f"{parameter}={ref!r} is not a column of the frame.{hint}")


def resolve_columns(frame: pd.DataFrame, x: Sequence[ColumnRef] | ColumnRef | None, y: ColumnRef | None,
                    ignored: Sequence[str] = (), unsupervised: bool = False) -> tuple[list[str], str | None]:
    """Predictor names and response name; x=None means every column but y and `ignored`. `unsupervised`
    (an autoencoder): y may be None, and a y given is left out of the predictors and returned as None."""
    if y is None and not unsupervised:
        raise ParameterError("y=None: name the response column, e.g. y='label'.")
    response = None if y is None else column_name(frame, y, "y")
    if x is None:
        predictors = [c for c in frame.columns if c != response and c not in ignored]
    else:
        refs = _column_refs(x)
        missing = [r for r in refs if isinstance(r, str) and r not in frame.columns]
        if missing:
            raise FrameError(f"x names columns that are not in the frame: {missing[:10]}; "
                             "check the names (x also takes 0-based positions).")
        predictors = [column_name(frame, r, "x") for r in refs]
    if response in predictors:
        if not unsupervised:
            raise ParameterError(f"y={response!r} is also in x; the response cannot be a predictor.")
        predictors.remove(response)
    if not predictors:
        raise ParameterError("x selects no columns; give at least one predictor.")
    if unsupervised:
        check_plain_values(frame, predictors)
        return predictors, None
    check_plain_values(frame, predictors + [response])
    return predictors, response


def _column_refs(x: object) -> list[ColumnRef]:
    """x as a list: a column name or position, or an ordered collection of them (list, tuple, pandas Index or
    Series, numpy array). A dict, a set or any other value is a ParameterError."""
    if isinstance(x, (str, int)):
        return [x]
    if isinstance(x, (list, tuple, range, pd.Index, pd.Series, np.ndarray)):
        return list(x)
    raise ParameterError(f"x={x!r} is not allowed: give a list of column names or 0-based positions, e.g. "
                         "x=['x1', 'x2'], or None for every column but y (a dict or a set has no column order "
                         "to keep).")


def detect_problem_type(frame: pd.DataFrame, predictors: Sequence[str], problem_type: str) -> str:
    """Deep Water's rule: 'image' when the first predictor holds image file names or URLs."""
    if problem_type == "auto":
        return "image" if looks_like_image_column(frame[predictors[0]]) else "dataset"
    if problem_type == "image":
        bad = first_non_image(frame[predictors[0]])
        if bad is not None:
            raise ParameterError(f"problem_type='image' needs the first x column to hold image paths or URLs; "
                                 f"column {predictors[0]!r} holds {bad!r}, which is none. Put the URI column first "
                                 "in x.")
    return problem_type


def is_categorical(series: pd.Series) -> bool:
    """True for category, object, string and bool columns: what H2O treats as enums."""
    return (isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(series)
            or pd.api.types.is_string_dtype(series) or pd.api.types.is_bool_dtype(series))
