"""Make a new API token and print it with the SHA-256 hash the API stores.

    python scripts/new_token.py

Give the token to the caller; store only the hash: append it (comma-separated)
to the SSM SecureString parameter named by the stack's TokenHashesParameter, e.g.

    aws ssm put-parameter --type SecureString --overwrite \\
        --name /onnx-prediction-api/token-hashes --value '<hash>[,<hash>...]'
"""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


if __name__ == "__main__":
    token, digest = new_token()
    print(f"token:  {token}")
    print(f"sha256: {digest}")
