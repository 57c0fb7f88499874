"""aegen's built-in plugins. Each module is one plugin, loaded through the "aegen" entry points
exactly as a third party's would be, and using only `aegen.api`."""
