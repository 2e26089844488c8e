"""Where jobs and rows are kept."""
