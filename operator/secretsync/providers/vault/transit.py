"""Vault (OpenBao) transit decryption as one session, for the SOPS provider: a document's
data key was encrypted by `sops` with a transit key, and is decrypted here as the store's
Vault login."""

from __future__ import annotations

import base64
import binascii

from secretsync.errors import ProviderError
from secretsync.providers.vault.transport import Transport, obj


class Transit:
    """Decrypts with transit keys as one token."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def decrypt(
        self, ciphertext: str, *, engine_path: str, key_name: str, what: str
    ) -> bytes:
        """The plaintext of a transit ciphertext ("vault:v1:..."): transit answers it in
        base64, undone here (sops gave the data key to transit as that base64). `what`
        names the document."""
        path = f"{engine_path.strip('/')}/decrypt/{key_name}"
        body = await self._transport.write("transit.decrypt", path, {"ciphertext": ciphertext})
        plaintext = obj(body.get("data"), "data").get("plaintext")
        if not isinstance(plaintext, str):
            raise ProviderError(f"vault: transit decrypt of {what} returned no plaintext")
        try:
            return base64.b64decode(plaintext, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError(
                f"vault: transit decrypt of {what} returned a plaintext that is not base64"
            ) from None

    async def validate(self) -> None:
        """Prove the token is alive (lookup-self needs no policy)."""
        await self._transport.get("token.lookup-self", "auth/token/lookup-self")

    async def close(self) -> None:
        await self._transport.close()
