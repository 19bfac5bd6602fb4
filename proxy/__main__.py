"""`python -m proxy` is `ccp`."""

from proxy.cli.main import main

raise SystemExit(main())
