"""Files in object stores (s3://, gs://, az:// or abfs://, hf://) and in zip archives, read and listed through
fsspec with the stores' usual credentials, and their errors in words that name the URI and the store's reason."""
from __future__ import annotations

import asyncio
import os
import re
import threading
import zipfile
from concurrent.futures import Future
from typing import Any, Callable, Mapping, Sequence

from deepwater.errors import MissingDependencyError, ParameterError, first_lines

# scheme -> (the pip extra that provides it, the package fsspec needs for it)
STORE_SCHEMES = {
    "s3": ("s3", "s3fs"), "s3a": ("s3", "s3fs"), "gs": ("gcs", "gcsfs"), "gcs": ("gcs", "gcsfs"),
    "az": ("azure", "adlfs"), "abfs": ("azure", "adlfs"), "hf": ("hf", "huggingface_hub"),
}
ZIP_SCHEME = "zip"  # a member of a local zip archive, as fsspec chains it: zip://cat/1.png::/data/train.zip
CREDENTIALS = {  # where each store looks for credentials, and the storage_options that give them instead
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for an S3-compatible store), or "
          "AWS_PROFILE with ~/.aws/credentials, or pass storage_options={'key': ..., 'secret': ...} "
          "(storage_options={'anon': True} for a public bucket)",
    "gcs": "set GOOGLE_APPLICATION_CREDENTIALS to a service account's key file, or run `gcloud auth "
           "application-default login`, or pass storage_options={'token': ...}",
    "azure": "set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, or "
             "pass storage_options={'account_name': ..., 'account_key': ...}",
    "hf": "set HF_TOKEN, or run `hf auth login`, or pass storage_options={'token': ...}",
}
STORE_ATTEMPTS = 2  # botocore's attempts at one request (the first and one retry) before an error is reported
# Requests start_reads keeps in flight at once on a store's event loop: botocore's connection pool by default, so that
# no request's timeout runs while it waits for a connection.
CONCURRENT_REQUESTS = 10
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError",
                   "ClientAuthenticationError", "CredentialUnavailableError", "LocalTokenNotFoundError")
_TRUNCATED = ("ClientPayloadError", "ContentLengthError", "IncompleteRead", "IncompleteReadError",
              "ResponseStreamingError")
_RECEIVED = re.compile(r"received (\d+) of (\d+) bytes")
_NO_CONNECTION = ("EndpointConnectionError", "ClientConnectorError", "ConnectionError", "ServerDisconnectedError")


def store_scheme(uri: object) -> str | None:
    """The lower-cased scheme of an object store URI ('s3', 'gs', ...) or of a zip member ('zip'), else None."""
    if not isinstance(uri, str):
        return None
    head, sep, _ = uri.strip().partition("://")
    scheme = head.lower()
    return scheme if sep and (scheme in STORE_SCHEMES or scheme == ZIP_SCHEME) else None


def store_path(uri: str) -> str:
    """The part of a URI that names the file: before '::' in a chained URL (zip://member::archive.zip)."""
    return uri.partition("::")[0]


def zip_member_uri(archive: str, member: str) -> str:
    """The URI of `member` of the local zip file `archive` (an absolute path)."""
    return f"{ZIP_SCHEME}://{member}::{archive}"


def check_storage_options(storage_options: object) -> dict[str, Any]:
    """The storage options as a dict (None: {}), or a ParameterError."""
    if storage_options is None:
        return {}
    if not isinstance(storage_options, Mapping) or not all(isinstance(k, str) for k in storage_options):
        raise ParameterError(f"storage_options={type(storage_options).__name__} must be a dict of the store's "
                             "options by name (as fsspec takes them, e.g. {'key': ..., 'secret': ...} for s3), "
                             "or None for the store's usual credentials.")
    return dict(storage_options)


def _type_names(error: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


def store_reason(error: BaseException, scheme: str, timeout: float) -> str:
    """Why a store could not give a file, in words: 404, 403, no credentials (and where to set them), a timeout."""
    extra = STORE_SCHEMES[scheme][0] if scheme in STORE_SCHEMES else scheme
    names = _type_names(error) | (_type_names(error.__cause__) if error.__cause__ else set())
    if isinstance(error, FileNotFoundError):
        return "no such bucket (404)" if "bucket" in first_lines(error).lower() else "no such object (404)"
    if isinstance(error, PermissionError):
        return f"access denied (403: {first_lines(error)}): the credentials in use may not read it"
    if names & set(_NO_CREDENTIALS):
        return f"no credentials found for the store: {CREDENTIALS.get(extra, 'pass them in storage_options')}"
    if isinstance(error, TimeoutError) or {"ReadTimeoutError", "ConnectTimeoutError"} & names:
        return f"the store did not answer within {timeout:g}s (timed out)"
    if names & set(_TRUNCATED):
        counts = _RECEIVED.search(str(error))
        return "the download was cut short" + (f" ({counts[1]} of {counts[2]} bytes)" if counts else "") + \
            " (truncated): try again, or check the store's network"
    if names & set(_NO_CONNECTION):
        return f"cannot connect to the store ({first_lines(error)})"
    if isinstance(error, IsADirectoryError):
        return "a folder (prefix), not an object"
    return first_lines(error)


def _settled(read: Callable[[str], bytes], uri: str) -> Future:
    """A future done with read(uri): its bytes, or the error it raised."""
    future: Future = Future()
    try:
        future.set_result(read(uri))
    except Exception as error:  # raised again by future.result(), where the read's caller waits
        future.set_exception(error)
    return future


class ObjectStores:
    """The fsspec filesystems one reader or one listing uses, one per scheme, made with `storage_options` when
    first needed; `timeout` bounds each request (seconds) so that a store that stalls is an error, not a hang."""

    def __init__(self, storage_options: Mapping[str, Any] | None = None, timeout: float = 10.0) -> None:
        self.storage_options = check_storage_options(storage_options)
        self.timeout = float(timeout)
        self._filesystems: dict[str, Any] = {}
        self._archives: dict[str, tuple[zipfile.ZipFile, threading.Lock]] = {}
        self._lock = threading.Lock()
        self._slots: asyncio.Semaphore | None = None  # made on the stores' event loop, where it is used

    def _options(self, scheme: str) -> dict[str, Any]:
        """The storage options for `scheme`, with botocore's timeouts and attempts for s3 unless given, and s3fs's
        max_concurrency=1 unless given: a file read in one request, not in parts after a HEAD request for its size
        (which doubles an image's requests)."""
        options = dict(self.storage_options)
        if STORE_SCHEMES[scheme][0] == "s3":
            config = {"connect_timeout": self.timeout, "read_timeout": self.timeout,
                      "retries": {"max_attempts": STORE_ATTEMPTS}}
            options["config_kwargs"] = {**config, **options.get("config_kwargs", {})}
            options.setdefault("max_concurrency", 1)
        return options

    def filesystem(self, uri: str) -> Any:
        """The filesystem that reads `uri` (a store URI): MissingDependencyError naming the extra when the
        store's fsspec package is not installed."""
        scheme = store_scheme(uri)
        extra, package = STORE_SCHEMES[scheme]
        with self._lock:
            if scheme in self._filesystems:
                return self._filesystems[scheme]
            try:
                import fsspec
            except ImportError as error:
                raise MissingDependencyError(f"fsspec (to read {uri!r})", extra) from error
            try:
                made = fsspec.filesystem(scheme, skip_instance_cache=True, **self._options(scheme))
            except ImportError as error:
                raise MissingDependencyError(f"{package} (to read {uri!r})", extra) from error
            except TypeError as error:  # an option the store does not take
                raise self._unknown_option(scheme, error) from error
            self._filesystems[scheme] = made
            return made

    def _unknown_option(self, scheme: str, error: TypeError) -> ParameterError:
        """The ParameterError of an option the store's filesystem does not take."""
        names = sorted(self.storage_options)
        return ParameterError(f"storage_options with {names} are not all options of the {scheme}:// store "
                              f"({first_lines(error)}); see the fsspec documentation of "
                              f"{STORE_SCHEMES[scheme][1]}.")

    def _call(self, fs: Any, method: str, *args: Any) -> Any:
        """fs.method(*args), bounded by the timeout where the filesystem runs on fsspec's event loop."""
        kwargs = {"timeout": self.timeout} if getattr(fs, "async_impl", False) else {}
        return getattr(fs, method)(*args, **kwargs)

    def _failure(self, error: Exception, scheme: str) -> Exception:
        """What a failed read of a `scheme` store raises: ValueError with the store's reason, or ParameterError for
        an option the store does not take (s3fs takes its options when it first connects)."""
        if isinstance(error, TypeError):
            return self._unknown_option(scheme, error)
        return ValueError(store_reason(error, scheme, self.timeout))

    def read(self, uri: str) -> bytes:
        """The bytes of the object `uri`; ValueError with the store's reason (404, 403, no credentials, a
        timeout), MissingDependencyError when the store's package is not installed."""
        scheme = store_scheme(uri)
        if scheme == ZIP_SCHEME:
            return self._read_member(uri)
        fs = self.filesystem(uri)
        try:
            return self._call(fs, "cat_file", uri)
        except Exception as error:  # each store's library raises its own types
            raise self._failure(error, scheme) from error

    def start_reads(self, uris: Sequence[str]) -> dict[str, Future]:
        """Each URI's read, begun now: a future whose result() is the object's bytes or raises the error read(uri)
        raises. The objects of a store whose filesystem runs on fsspec's event loop (s3, gcs, azure) are requested
        there together, CONCURRENT_REQUESTS at a time, each within the timeout, so that the first are decoded while
        the rest download, with no thread waiting on each; the others are read here, one by one."""
        reads: dict[str, Future] = {}
        for uri in dict.fromkeys(uris):
            fs = self._async_filesystem(uri)
            reads[uri] = _settled(self.read, uri) if fs is None else \
                asyncio.run_coroutine_threadsafe(self._cat(fs, uri), fs.loop)
        return reads

    def _async_filesystem(self, uri: str) -> Any | None:
        """The filesystem of `uri` when it runs on fsspec's event loop; None for a zip member, a store read through
        blocking calls, or one whose filesystem cannot be made (read() raises why)."""
        if store_scheme(uri) == ZIP_SCHEME:
            return None
        try:
            fs = self.filesystem(uri)
        except (MissingDependencyError, ParameterError):
            return None
        return fs if getattr(fs, "async_impl", False) else None

    async def _cat(self, fs: Any, uri: str) -> bytes:
        """The bytes of `uri` from the async filesystem `fs`, requested when one of the requests in flight ends."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(CONCURRENT_REQUESTS)
        async with self._slots:
            try:
                return await asyncio.wait_for(fs._cat_file(uri), self.timeout)
            except Exception as error:  # each store's library raises its own types
                raise self._failure(error, store_scheme(uri)) from error

    def _read_member(self, uri: str) -> bytes:
        """The bytes of the zip member `uri` (zip://member::/path/archive.zip), read in place (nothing is
        extracted); the archive is opened once."""
        member, _, archive = uri[len(ZIP_SCHEME) + 3:].partition("::")
        if not os.path.isfile(archive):  # a FIFO or a device is never opened
            found = "not a regular file" if os.path.exists(archive) else "no such file"
            raise ValueError(f"the zip file {archive!r}: {found}")
        try:
            with self._lock:
                if archive not in self._archives:
                    self._archives[archive] = (zipfile.ZipFile(archive), threading.Lock())
                opened, lock = self._archives[archive]
            with lock:
                return opened.read(member)
        except KeyError:
            raise ValueError(f"the zip file {archive!r} has no member {member!r}") from None
        except (OSError, zipfile.BadZipFile) as error:
            raise ValueError(f"cannot read the zip file {archive!r}: {first_lines(error)}") from error

    def close(self) -> None:
        """Close the zip archives opened for reading."""
        with self._lock:
            for opened, _ in self._archives.values():
                opened.close()
            self._archives.clear()

    def list_files(self, prefix: str) -> list[str]:
        """The URIs of every object under `prefix` (a folder of a store), sorted; ValueError with the reason."""
        scheme = store_scheme(prefix)
        fs = self.filesystem(prefix)
        try:
            found = self._call(fs, "find", prefix)
        except Exception as error:
            raise ValueError(store_reason(error, scheme, self.timeout)) from error
        return sorted(fs.unstrip_protocol(path) for path in found)
