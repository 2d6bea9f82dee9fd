"""Lambda: the handler (Mangum behind an event guard, observed by Powertools) and SnapStart's hooks."""
