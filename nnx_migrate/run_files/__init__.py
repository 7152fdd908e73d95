"""What a repository run needs around its files: locks against a second run, stale
temporary files, symlinks, folder and write errors, the garbage collector's settings."""
