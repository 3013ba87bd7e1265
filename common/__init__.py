"""Small utilities every package may use, none of which knows a record or a model: text cleaning, the one
Jinja2 environment and its formatters, the offline switches, the settings-to-environment bridge and the
modes of the files Driftline writes. Imports nothing else in the repository."""
