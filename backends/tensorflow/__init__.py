"""The tensorflow backend: backend.py (the Backend), net.py (built-in networks) and the graph-file loaders."""
