"""frontrouter: an approuter-style gateway. It logs users in against IAS or XSUAA, keeps
their tokens in a server-side session, and forwards requests to the app along the routes of
an ``xs-app.json``, with the user's JWT as ``Authorization: Bearer``. (Being built: the route
table, the session store, CSRF and forwarding come first.)"""
