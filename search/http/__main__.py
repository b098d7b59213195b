"""``python -m search.http``: the same as ``esco-search serve``."""

from search.http.server import main

raise SystemExit(main())
