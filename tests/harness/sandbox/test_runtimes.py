"""The one interface every sandbox runtime implements (harness.sandbox.runtime): the runtime by
name with its options, the errors a run result reports by class, and a command's result."""
import pytest

from harness.sandbox.docker_runtime import DockerRuntime
from harness.sandbox.local import LocalRuntime
from harness.sandbox.opensandbox_runtime import OpenSandboxRuntime
from harness.sandbox.runtimes import get_runtime

pytestmark = pytest.mark.quick


def test_each_name_gives_its_runtime_with_the_options_passed_on(tmp_path):
    local = get_runtime("local", base_dir=tmp_path)
    assert isinstance(local, LocalRuntime) and local.name == "local" and local.base_dir == tmp_path
    docker = get_runtime("docker", image="img:1", network_mode="bridge")  # no engine is contacted
    assert isinstance(docker, DockerRuntime) and (docker.name, docker.image, docker.network_mode) == \
        ("docker", "img:1", "bridge")
    osb = get_runtime("opensandbox", server_url="http://127.0.0.1:1", api_key="k")
    assert isinstance(osb, OpenSandboxRuntime) and (osb.name, osb.server_url) == \
        ("opensandbox", "http://127.0.0.1:1")


@pytest.mark.parametrize("name", ["vm", "Local", "", "firecracker"])
def test_any_other_name_is_a_value_error_listing_the_known_ones(name):
    with pytest.raises(ValueError, match=rf"^unknown sandbox runtime {name!r}: expected local, "
                                         r"opensandbox or docker$"):
        get_runtime(name)


def test_an_option_a_runtime_does_not_take_is_a_type_error():
    with pytest.raises(TypeError):
        get_runtime("local", server_url="http://x")
