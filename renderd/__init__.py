"""renderd: a render farm whose whole state is a shared folder."""

__version__ = "0.1.0"
