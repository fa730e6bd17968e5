"""The code uet's activities are made of — git, processes, patches, tools' adapters, the
artifact store — and that the CLI uses too. It defines no activity: those are the modules of
activities/ itself, listed in activities/registry.py."""
