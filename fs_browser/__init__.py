"""A file-select browser for Textual apps, and the `render-fs` program."""
