# Data-parallel training under mpirun (docs/training.md): N ranks against one process with
# N times the gradient accumulation (bit-identical), SIGTERM and kill -9 under mpirun with
# bit-exact resume, and a build without MPI. CI runs them with
# `mpirun --allow-run-as-root --oversubscribe -np N`; they skip when MPI is absent.
foreach(check parity signals faults)
  medtune_add_test(NAME mpi_${check}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/mpi/check_${check}.py
    LABELS mpi)
endforeach()

# A whole second build (-DMEDTUNE_MPI=OFF): Release suite only.
medtune_add_test(NAME mpi_build_without_mpi
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/mpi/check_build_without_mpi.py
  LABELS mpi slow)
