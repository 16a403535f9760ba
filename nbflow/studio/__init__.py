"""The studio: a Panel app to build pipelines visually, run them and browse their runs.

``nbflow studio [FOLDER]`` serves it on 127.0.0.1. The package is split by concern:

``editing.py``  the notebook as JSON: add, delete, rename steps, tags, edges, layout
                (pure; no Panel, imported by its own fast tests)
``canvas.py``   the graph component (cytoscape.js bundled from npm at install time)
``folder.py``   the folder's notebooks, confining a browser's path, the report address (pure)
``layout.py``   the widgets of a session and where they sit
``edits.py``    editing steps and edges from the canvas and the step editor
``runs.py``     starting and following runs, the run history, reports
``app.py``      one session: opens a notebook, builds and plans it (uses the three above)
``serve.py``    the server: address, origins, login, the report handler (imports ``app``)

Importing this package imports nothing heavy; Panel is loaded by ``app``, ``layout`` and ``canvas``.
"""
