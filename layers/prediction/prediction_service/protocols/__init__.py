"""Codecs: each protocol decodes its bodies into the data plane's requests and encodes its answers."""
