"""`python -m proxy` is `ccp`."""
from proxy.cli import main

raise SystemExit(main())
