"""Every side effect uet has: planning, git, tools, gates, artifacts.

Activities are functions of immutable inputs (shas, artifact hashes, the spec), so a retry,
a restart or another worker host redoes the same thing and gets the same answer.
"""
