"""The `ccp` command: verbs over the running shim, the profiles and the logs."""
