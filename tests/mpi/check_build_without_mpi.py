#!/usr/bin/env python3
"""A build with -DMEDTUNE_MPI=OFF (what a machine without libopenmpi-dev gets) compiles, trains
one process to the same bytes as the MPI build, and refuses to run as several ranks instead of
starting N independent runs on one out_dir."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi_lib import config, fail, fresh_data, medtune_bin, skip, work_dir  # noqa

SOURCE = os.environ.get("MEDTUNE_SOURCE", os.path.join(os.path.dirname(__file__), "../.."))


def main():
    work = work_dir("nompi")
    build = os.path.join(work, "build")
    cfg = subprocess.run(["cmake", "-S", SOURCE, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                          "-DMEDTUNE_MPI=OFF"], capture_output=True, text=True)
    if cfg.returncode != 0:
        fail(f"configure with MEDTUNE_MPI=OFF failed:\n{cfg.stdout[-2000:]}\n{cfg.stderr[-3000:]}")
    if "MPI data-parallel training OFF" not in cfg.stdout:
        fail(f"the configure step did not switch MPI off:\n{cfg.stdout[-2000:]}")
    b = subprocess.run(["cmake", "--build", build, "-j2", "--target", "medtune"],
                       capture_output=True, text=True)
    if b.returncode != 0:
        fail(f"build with MEDTUNE_MPI=OFF failed:\n{b.stdout[-3000:]}\n{b.stderr[-3000:]}")
    nompi = os.path.join(build, "medtune")
    libs = subprocess.run(["ldd", nompi], capture_output=True, text=True).stdout
    if "libmpi" in libs:
        fail(f"the MEDTUNE_MPI=OFF binary links MPI:\n{libs}")
    print("ok: built without MPI, no libmpi linked")

    data = fresh_data(work)
    runs = {}
    for name, exe in (("with_mpi", medtune_bin()), ("without_mpi", nompi)):
        conf = config(work, name, data, 6, 2, save_every=3, eval_every=3)
        p = subprocess.run([exe, "train", conf], capture_output=True, text=True)
        if p.returncode != 0:
            fail(f"{name}: train failed:\n{p.stderr[-3000:]}")
        runs[name] = open(os.path.join(conf[:-5], "adapter/adapter_model.safetensors"),
                          "rb").read()
    if runs["with_mpi"] != runs["without_mpi"]:
        fail("one process: the adapters of the builds with and without MPI differ")
    print("ok: one process trains to the same adapter bytes in both builds")

    mpirun = shutil.which("mpirun")
    if not mpirun:
        skip("mpirun is absent: the refusal of several ranks was not checked")
    conf = config(work, "ranks", data, 6, 1)
    p = subprocess.run([mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "2", nompi,
                        "train", conf], capture_output=True, text=True, timeout=300)
    if p.returncode == 0 or "built without MPI" not in p.stderr:
        fail(f"2 ranks of the build without MPI: exit {p.returncode}:\n{p.stderr[-2000:]}")
    if os.path.exists(os.path.join(work, "ranks")):
        fail("the refused ranks created the out_dir")
    print("ok: refused under mpirun -np 2")
    print("PASS")


if __name__ == "__main__":
    main()
