"""The C safetensors writer's output, read by the `safetensors` Python package: tensors,
dtypes, shapes, metadata and the header layout (8-byte aligned, keys sorted)."""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open


def main():
    exe = os.path.join(os.environ.get("MEDTUNE_TEST_BIN", "."), "test_safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.safetensors")
        subprocess.run([exe, "--write", path], check=True)
        vals = [1.0, -2.5, 3.14159265, 1e-7]
        want = {
            "z.f32": torch.tensor([0.5 * i - 1.0 for i in range(6)], dtype=torch.float32).reshape(2, 3),
            "a.u8": torch.tensor([200, 201, 202], dtype=torch.uint8),
            "m.i32": torch.tensor([i - 2 for i in range(5)], dtype=torch.int32),
            "b.f16": torch.from_numpy(np.array(vals, dtype=np.float16)).reshape(2, 2),
            "c.i64": torch.tensor([1 << (40 + i) for i in range(3)], dtype=torch.int64),
            "d.bf16": torch.tensor(vals, dtype=torch.float32).to(torch.bfloat16),
            'scalar "quoted"': torch.tensor(-1.0, dtype=torch.float32),
        }
        failures = []
        with safe_open(path, framework="pt") as f:
            if f.metadata() != {"format": "pt", "a_key": "line\nbreak"}:
                failures.append(f"metadata {f.metadata()}")
            if sorted(f.keys()) != sorted(want):
                failures.append(f"keys {sorted(f.keys())}")
            for k, w in want.items():
                t = f.get_tensor(k)
                if t.dtype != w.dtype or t.shape != w.shape or not torch.equal(t, w):
                    failures.append(f"{k}: got {t} expected {w}")
        raw = open(path, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        header = raw[8:8 + n].decode()
        if (8 + n) % 8:
            failures.append(f"data buffer starts at {8 + n}, not a multiple of 8")
        keys = list(json.loads(header))
        if keys != ["__metadata__"] + sorted(want):
            failures.append(f"header key order {keys}")
        if failures:
            print("FAIL:\n  " + "\n  ".join(failures))
            sys.exit(1)
        print(f"writer output read back by safetensors {len(want)} tensors ok")


if __name__ == "__main__":
    main()
