"""Per-stream state: the table of rows and its snapshot encoding."""
