"""Where model files come from and where they are kept: S3, an in-memory LRU of parsed artifacts,
/tmp copies, and the cache that puts them together (single flight, revalidation, stale-if-error)."""
