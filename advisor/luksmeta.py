"""What a LUKS2 header's JSON metadata says about how it is unlocked: its tokens.

``cryptsetup luksDump --dump-json-metadata HEADER`` prints the metadata; systemd-cryptenroll
records each TPM2, FIDO2 or PKCS#11 enrollment there as a token (``systemd-tpm2``...), and
systemd-cryptsetup uses the token a crypttab option asks for (crypttab(5)). Read by the
enrollment's probe (:mod:`advisor.install.verify`) and by ``advisor check``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

#: The crypttab option (crypttab(5)) that makes systemd-cryptsetup unlock with a token,
#: and the type of the token it looks for in the header.
TOKEN_OPTIONS: Mapping[str, str] = {
    "tpm2-device": "systemd-tpm2",
    "fido2-device": "systemd-fido2",
    "pkcs11-uri": "systemd-pkcs11",
}


def token_types(metadata: str) -> list[str]:
    """The types of the tokens in a LUKS2 header's JSON metadata, in token order; a
    :class:`ValueError` if it is not that metadata."""
    data = json.loads(metadata)
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, dict):
        raise ValueError("no tokens object in the LUKS2 metadata")
    ordered = sorted(tokens.items(), key=lambda item: int(item[0]) if item[0].isdigit() else 0)
    return [str(token.get("type")) for _, token in ordered if isinstance(token, dict)]


def wanted_tokens(options: Iterable[str]) -> list[str]:
    """The token types crypttab ``options`` (``tpm2-device=auto``) make systemd-cryptsetup
    look for, in their order."""
    wanted = []
    for option in options:
        kind = TOKEN_OPTIONS.get(option.partition("=")[0])
        if kind is not None and kind not in wanted:
            wanted.append(kind)
    return wanted
