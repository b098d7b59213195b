from search.cli import console

raise SystemExit(console())
