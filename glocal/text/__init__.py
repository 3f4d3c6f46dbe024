"""Text: class lists and description files, a text dataset's files, the text-kind registry and the built-in text kinds, sentence sets, embeddings (the text bank), Waffle's words, LLM descriptions."""
