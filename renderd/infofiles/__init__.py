"""Info files and the spool: the farm's only state."""
