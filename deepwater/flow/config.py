"""Flow's settings: where it keeps its catalogue, which folders it may read, its token and its upload limit."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from deepwater.data.stores import STORE_SCHEMES, store_scheme
from deepwater.errors import ParameterError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class FlowConfig:
    """data_dir: the folder of the catalogue, its frames and models (made when missing). allow_dirs: the folders
    (and their subfolders) whose files may be imported by path. allow_stores: the object store prefixes
    ('s3://bucket/train/') whose images may be imported, read with the server's own credentials (its environment;
    Flow records none). token: asked of every request when set (required off the loopback address: see
    server.run). max_upload_mb: the largest uploaded file."""

    data_dir: str
    allow_dirs: tuple[str, ...] = field(default_factory=tuple)
    token: str | None = None
    max_upload_mb: float = 200.0
    allow_stores: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.data_dir, (str, os.PathLike)) or not str(self.data_dir):
            raise ParameterError(f"data_dir={self.data_dir!r} must be a folder's path (made when missing).")
        if os.path.exists(self.data_dir) and not os.path.isdir(self.data_dir):
            raise ParameterError(f"data_dir={str(self.data_dir)!r} is a file; give a folder for Flow's catalogue.")
        for folder in self.allow_dirs:
            if not os.path.isdir(folder):
                raise ParameterError(f"allow_dir={folder!r} is not a folder; give folders whose files Flow may "
                                     "import.")
        for prefix in self.allow_stores:
            if store_scheme(prefix) not in STORE_SCHEMES:
                raise ParameterError(f"allow_stores={prefix!r} is not an object store prefix; give one such as "
                                     "'s3://bucket/train/'.")
        if self.token is not None and (not isinstance(self.token, str) or len(self.token) < 8):
            raise ParameterError("token must be a string of at least 8 characters (or None to have one made).")
        if isinstance(self.max_upload_mb, bool) or not isinstance(self.max_upload_mb, (int, float)) \
                or not self.max_upload_mb > 0:
            raise ParameterError(f"max_upload_mb={self.max_upload_mb!r} must be a number of megabytes > 0.")
        object.__setattr__(self, "data_dir", str(self.data_dir))
        object.__setattr__(self, "allow_dirs", tuple(os.path.realpath(d) for d in self.allow_dirs))
        object.__setattr__(self, "allow_stores", tuple(p.rstrip("/") + "/" for p in self.allow_stores))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)
