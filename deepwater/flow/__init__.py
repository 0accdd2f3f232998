"""Deep Water Flow (`deepwater flow`, extra `deepwater[flow]`): a web UI and REST API to import frames, train models
in the background, watch their scoring history and predict, over a SQLite catalogue that a restart keeps.

>>> from deepwater.flow.config import FlowConfig          # doctest: +SKIP
>>> from deepwater.flow.app import create_app             # an ASGI app: uvicorn.run(app)   # doctest: +SKIP
>>> app = create_app(FlowConfig("flow-data", allow_dirs=("data",)))   # doctest: +SKIP
"""
