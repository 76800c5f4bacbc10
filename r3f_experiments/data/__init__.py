"""Data preparation: GLUE, MRPC, XNLI, summarization and the built-in synthetic tasks."""
