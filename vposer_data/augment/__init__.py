"""Stage II's augmentations: :mod:`.registry` declares each one once (torch-free: settings
and the command line read it), :mod:`.ops` holds the functions (torch)."""
