"""gunicorn settings for frontapp (``gunicorn --config gunicorn.conf.py 'app:create_app()'``).

Most of a request's time is spent waiting: on XSUAA for the exchange and on the iFlow,
which may take seconds. Threads (gthread) hold those waits cheaply. Measured with an iFlow
that takes 2 s (bench/bench_concurrency.py): 2 workers x 64 threads answer 100 concurrent
users in 2.6 s (p99) with /health at 4 ms; at 128 some wait for a second round, because
the workers' accept race splits connections unevenly. 2 x 32 queued already at 64. For
more, scale out instances: the app keeps no shared state.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "64"))
# Longer than the slowest legitimate request: exchange (3+10 s) plus the iFlow (3+30 s).
timeout = 60
graceful_timeout = 30
keepalive = 5
# Load the app once in the master: a configuration error stops start-up with one message.
preload_app = True
# Bearer tokens travel in a header. Twice the largest token the app accepts (MAX_TOKEN_BYTES,
# 8,192): a token just over it reaches the app and gets its 401 with a reason, not gunicorn's
# bare 400 (which came at ~8,168 bytes, as "Authorization: Bearer " counts too).
limit_request_field_size = 16384
# No access log: the app logs each request itself, without query strings or headers.
accesslog = None
