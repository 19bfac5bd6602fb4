"""The sandbox runtimes by name: `local` (a process in a temp dir), `opensandbox` (the official
OpenSandbox SDK) and `docker`; each is imported only when asked for (their SDKs are heavy)."""
from __future__ import annotations

from harness.sandbox.runtime import Runtime


def get_runtime(name: str, **options) -> Runtime:
    """The runtime called `name` (local, opensandbox, docker); ValueError for anything else."""
    if name == "local":
        from harness.sandbox.local import LocalRuntime
        return LocalRuntime(**options)
    if name == "opensandbox":
        from harness.sandbox.opensandbox_runtime import OpenSandboxRuntime
        return OpenSandboxRuntime(**options)
    if name == "docker":
        from harness.sandbox.docker_runtime import DockerRuntime
        return DockerRuntime(**options)
    raise ValueError(f"unknown sandbox runtime {name!r}: expected local, opensandbox or docker")
