"""The review console: server-rendered pages at ``/ui`` over the same records as the control API."""
