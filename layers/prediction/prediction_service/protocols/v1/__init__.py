"""The seed documents' API: windows, feature rows, ids, labels and probabilities, texts, batches and
the playground's runs."""
