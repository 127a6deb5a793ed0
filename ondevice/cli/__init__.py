"""The `ondevice` command line: one thin client of the library."""
