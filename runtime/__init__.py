"""Running uet: settings, the spec file, the embedded server, connection, logging, commands."""
