"""OpenAI's embeddings API: the text models, for the clients embedding users already have."""
