"""One data plane under every protocol: route -> runtime -> run (its shadow beside it), and the
bookkeeping every request shares (logs, metrics, shadow outcomes, records)."""
