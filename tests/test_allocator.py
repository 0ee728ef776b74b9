import platform
import subprocess
import sys

import pytest

# Runs a U-Net whose activations are megabytes five times; prints the minor page faults taken.
FAULTS = """
import resource, sys
import torch
from geo_p2p.allocator import keep_freed_memory
from geo_p2p.nets import UNetGenerator
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
net = UNetGenerator(ngf=4, levels=8).eval()
x = torch.rand(2, 3, 256, 256)
with torch.inference_mode():
    net(x)
    net(x)  # the heap settles in two passes
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        net(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    run = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
    )
    return int(run.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_kept_memory_spares_the_page_faults_of_every_forward_pass() -> None:
    default, kept = faults("default"), faults("keep")
    assert default > 1000  # each pass faults its activations in again
    assert kept * 10 < default
