import platform
import subprocess
import sys

import pytest

# A U-Net whose activations are megabytes, ten passes in the main thread; then a convolution
# with an 80 MiB output, six passes in each of two threads one after the other (threads get
# heaps of at most 64 MiB from glibc). Prints the minor page faults of the main thread's passes
# and of the second thread's.
FAULTS = """
import resource, sys, threading
from geo_p2p.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
import torch
from geo_p2p.nets import UNetGenerator

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

torch.set_num_threads(1)
net = UNetGenerator(ngf=4, levels=8).eval()
x = torch.rand(2, 3, 256, 256)
conv = torch.nn.Conv2d(3, 16, 3, padding=1)
y = torch.rand(20, 3, 256, 256)

def passes():
    with torch.inference_mode():
        for _ in range(6):
            conv(y)

with torch.inference_mode():
    net(x)
    net(x)  # the heap settles in two passes
    before = faults()
    for _ in range(10):
        net(x)
model = faults() - before
for _ in range(2):
    before = faults()
    thread = threading.Thread(target=passes)
    thread.start()
    thread.join()
print(model, faults() - before)
"""


def faults(mode: str) -> tuple[int, int]:
    """Page faults of the model passes and of the second thread's convolutions."""
    run = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
    )
    model, thread = run.stdout.split()
    return int(model), int(thread)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_kept_memory_spares_the_page_faults_of_every_forward_pass() -> None:
    (model, thread), (model_kept, thread_kept) = faults("default"), faults("keep")
    assert model > 5000  # each pass faults its activations in again (about 1,000 pages)
    # All ten passes together fault fewer pages than one pass does by default (what is left is
    # noise from the rest of the process: 0 to 640 faults seen).
    assert model_kept < model / 10
    pages = (20 * 16 * 256 * 256 * 4) // 4096  # of one convolution output
    assert thread > 5 * pages  # each pass faults its output in again
    assert thread_kept < pages // 2  # the memory the first thread freed is reused
