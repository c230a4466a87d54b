"""The 360 view and how each source's events change it: pure code, no I/O, no clock."""
