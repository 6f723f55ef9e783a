"""The `render` front-end: the command line (and, later, the Textual app) over the spool."""
