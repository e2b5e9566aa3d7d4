"""`python -m crawler`: the same program as the `crawler` command."""

from crawler.cli import main

raise SystemExit(main())
