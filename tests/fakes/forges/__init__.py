"""Fake forge APIs (GitHub here; GitLab and Gitea alongside) for the forge clients' tests.

Each is a Starlette app run on loopback by :func:`fakes.forges.common.serve`, with in-memory
repositories, pull requests, issues and comments, and a local git repository per fake
repository whose branches decide which pull requests may be opened.
"""
