"""Checked, cached downloads on top of pooch.

`fetch(url, "sha1:...")` returns the local path of a file whose hash is known to be right:
from the cache when a good copy is there, else downloaded to a temporary name in the cache
directory, checked, and only then renamed (pooch does the temporary-file dance), so a
half-written or tampered file never sits under the final name.

Cache directory: the `cache_dir` argument, else $SEQCORE_CACHE, else the platform's user cache
(`pooch.os_cache("seqcore")`, e.g. ~/.cache/seqcore). To work offline, put the file there under
the last part of its URL; it is used once its hash matches.
"""
from __future__ import annotations

import os
import re
import sys
import urllib.parse
from pathlib import Path

import pooch
import requests

from seqcore.errors import SeqcoreError

CACHE_ENV = "SEQCORE_CACHE"
_HEX_DIGITS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}


def resolve_cache_dir(explicit: str | Path | None = None) -> Path:
    """Where downloads are kept: `explicit`, else $SEQCORE_CACHE, else the user cache."""
    if explicit is not None:
        return Path(explicit).expanduser()
    from_env = os.environ.get(CACHE_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return Path(pooch.os_cache("seqcore"))


def check_hash(known_hash: str) -> tuple[str, str]:
    """('sha1', 'hex...') from 'sha1:hex...'; one sentence on anything else."""
    if not isinstance(known_hash, str):
        known_hash = repr(known_hash)
    algorithm, _, digest = known_hash.partition(":")
    algorithm = algorithm.lower()
    expected_length = _HEX_DIGITS.get(algorithm)
    if expected_length is None or not re.fullmatch(f"[0-9a-fA-F]{{{expected_length}}}", digest):
        raise SeqcoreError(
            f"The known hash {known_hash!r} must look like 'ALGORITHM:HEX' with ALGORITHM one of "
            f"{', '.join(_HEX_DIGITS)} and the matching number of hex digits."
        )
    return algorithm, digest.lower()


def _file_name(url: str) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name:
        raise SeqcoreError(f"The URL {url} does not end in a file name.")
    return name


class _HashingDownloader:
    """pooch's HTTP downloader that also remembers the hash of what it wrote.

    pooch deletes a download whose hash is wrong before raising, so the actual hash is taken
    here, while the temporary file still exists, for the error message.
    """

    def __init__(self, algorithm: str, progressbar: bool) -> None:
        self._download = pooch.HTTPDownloader(progressbar=progressbar)
        self._algorithm = algorithm
        self.actual_hash: str | None = None

    def __call__(self, url: str, output_file: str, pooch_instance: object) -> None:
        self._download(url, output_file, pooch_instance)
        self.actual_hash = pooch.file_hash(output_file, alg=self._algorithm)


def fetch(
    url: str,
    known_hash: str,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Path of the file at `url`, downloaded once into the cache and checked against `known_hash`.

    `known_hash` is 'md5:...', 'sha1:...', 'sha256:...' or 'sha512:...'. Raises SeqcoreError when
    the server cannot be reached, answers with an error, or sends bytes with another hash.
    """
    algorithm, digest = check_hash(known_hash)
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise SeqcoreError(f"The URL {url} must start with http:// or https://.")
    folder = resolve_cache_dir(cache_dir)
    name = _file_name(url)
    target = folder / name
    downloader = _HashingDownloader(algorithm, progressbar=progress and sys.stderr.isatty())
    try:
        local = pooch.retrieve(
            url, known_hash=f"{algorithm}:{digest}", fname=name, path=folder, downloader=downloader
        )
    except ValueError as error:
        if downloader.actual_hash is None:  # failed before any bytes were checked
            raise _unreachable(url, str(error), target) from None
        raise SeqcoreError(
            f"The file downloaded from {url} has {algorithm} {downloader.actual_hash}, not the "
            f"expected {digest}, so it was not kept; the server may have changed the file."
        ) from None
    except requests.exceptions.HTTPError as error:
        status = error.response.status_code if error.response is not None else "unknown"
        reason = error.response.reason if error.response is not None else str(error)
        raise _unreachable(url, f"HTTP {status} {reason}", target) from None
    except requests.exceptions.Timeout:
        raise _unreachable(url, "the server did not answer in time", target) from None
    except requests.exceptions.ConnectionError:
        raise _unreachable(url, "no connection to the server", target) from None
    except requests.exceptions.RequestException as error:
        raise _unreachable(url, type(error).__name__, target) from None
    except OSError as error:  # after RequestException, which is an OSError too
        raise SeqcoreError(
            f"Could not write the download of {url} to {folder} ({error.strerror}); "
            f"choose a writable cache directory, for example with {CACHE_ENV}."
        ) from None
    return Path(local)


def _unreachable(url: str, reason: str, target: Path) -> SeqcoreError:
    return SeqcoreError(
        f"Could not download {url} ({reason}); check the address or your network, "
        f"or put the file at {target}."
    )
