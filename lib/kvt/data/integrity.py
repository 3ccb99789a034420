"""The data files' sums checked before any job reads them: now part of kvt.data.acquire (fetch,
verify, stage, manifest in one place); this name stays for the runtime modules that import it."""

from .acquire import ChecksumError, sha256, verified_root  # noqa: F401
