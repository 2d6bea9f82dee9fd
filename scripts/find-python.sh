#!/usr/bin/env bash
# Print the path of a Python interpreter of the given minor version (default 3.13),
# the version the Lambda functions run on. Looks on PATH first, then in pyenv.
set -euo pipefail
want="${1:-3.13}"
if command -v "python${want}" >/dev/null 2>&1 && "python${want}" -c 'pass' >/dev/null 2>&1; then
  command -v "python${want}"
  exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
  version="$(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}(\.[0-9]+)?$" | sort -V | tail -1 || true)"
  if [[ -n "$version" && -x "$(pyenv root)/versions/${version}/bin/python${want}" ]]; then
    echo "$(pyenv root)/versions/${version}/bin/python${want}"
    exit 0
  fi
fi
echo "error: Python ${want} not found; install it (e.g. 'pyenv install ${want}') and retry" >&2
exit 1
