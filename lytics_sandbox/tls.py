"""A local certificate authority for the HTTPS stand-ins (``trustme``).

:func:`local_tls` issues a server certificate for the loopback names and writes the CA
certificate to a file, so a client trusts the stand-in through ``REQUESTS_CA_BUNDLE`` (or a
``verify=`` path) and never through ``verify=False``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalTLS:
    """A server context for a stand-in and the CA file its clients trust."""

    server_context: ssl.SSLContext
    ca_file: Path


def local_tls(folder: Path, names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> LocalTLS:
    """A new CA, a server certificate for ``names``, and the CA written to ``folder/ca.pem``."""
    import trustme

    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*names).configure_cert(context)
    folder.mkdir(parents=True, exist_ok=True)
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return LocalTLS(context, ca_file)
