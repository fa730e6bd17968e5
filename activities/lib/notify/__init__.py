"""Notifications: the messages (messages.py) and their delivery over HTTP (delivery.py)."""
