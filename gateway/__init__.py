"""frontrouter: an approuter-style gateway. It logs users in against IAS or XSUAA, keeps
their tokens in a server-side session (memory or Redis), and forwards requests along the
routes of an ``xs-app.json`` to the app, with the user's JWT as ``Authorization: Bearer``.
Run it with ``python -m gateway``."""
