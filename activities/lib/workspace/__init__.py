"""What a checkout needs besides its tracked files: setup, caches, included files, env and
ports (the phase's ``workspace:``), prepared the same way for a tool run and for gates."""
