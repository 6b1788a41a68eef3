"""An elastic replica: torchrun (configured only by the PET_* variables) runs this in each
node; it all-reduces a one over gloo and prints the world it found."""

import os

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
t = torch.tensor([1.0])
dist.all_reduce(t)
restarts = os.environ.get("TORCHELASTIC_RESTART_COUNT")
print(f"rank={dist.get_rank()} world={dist.get_world_size()} sum={t.item()} restarts={restarts}")
dist.destroy_process_group()
