"""stagectl reference Django project (settings, URLs, WSGI, logging, middleware)."""
