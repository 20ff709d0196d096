"""gunicorn settings for frontapp (``gunicorn --config gunicorn.conf.py 'app:create_app()'``).

Most of a request's time is spent waiting: on XSUAA for the exchange and on the iFlow,
which may take seconds. Threads (gthread) hold those waits cheaply; 2 workers x 32 threads
keep 64 requests in flight per instance (bench/README.md has the measurement). Raise
GUNICORN_THREADS for slower iFlows, or scale out instances: the app keeps no shared state.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
# Longer than the slowest legitimate request: exchange (3+10 s) plus the iFlow (3+30 s).
timeout = 60
graceful_timeout = 30
keepalive = 5
# Load the app once in the master: a configuration error stops start-up with one message.
preload_app = True
# Bearer tokens travel in a header; this is also the largest token the app accepts.
limit_request_field_size = 8190
# No access log: the app logs each request itself, without query strings or headers.
accesslog = None
