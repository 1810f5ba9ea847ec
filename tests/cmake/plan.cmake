# Area `plan`: the training plan's and the decoder's arenas are sized by the same buffer list
# that carves them (common/arena.h); every buffer is used by a training step. Under
# MEDTUNE_SANITIZE, AddressSanitizer checks the kernels stay inside their slices.
medtune_add_test(NAME plan_arena COMMAND test_plan LABELS model)
# The benchmark's own step and per-op-class profile on a tiny shape: bench/ is not part of the
# library, so without this a change to the model's structures (the fused LoRA targets) can
# break the benchmarks unseen until someone measures.
medtune_add_test(NAME bench_train_smoke
  COMMAND $<TARGET_FILE:bench_train> --layers 2 --hidden 64 --intermediate 128 --heads 4
          --kv-heads 2 --head-dim 16 --vocab 256 --batch 2 --seq 32 --steps 1
  LABELS model)
set_tests_properties(bench_train_smoke PROPERTIES PASS_REGULAR_EXPRESSION "\"profile_s\": {\"frozen_proj\"")
# The fused LoRA A products of q/k/v and gate/up (model/proj.c) against the separate products
# on the same inputs, with subsets of each group and qwen3's q/k norms; recompute bit-equal.
medtune_add_test(NAME plan_lora_fuse COMMAND test_lora_fuse LABELS model)
# bench_group (the separate and fused products of q/k/v and gate/up) runs on a tiny shape.
medtune_add_test(NAME bench_group_smoke
  COMMAND $<TARGET_FILE:bench_group> --batch 1 --seq 16 --hidden 64 --intermediate 128
          --heads 4 --kv-heads 2 --head-dim 16 --rank 4 --reps 3
  LABELS model)
set_tests_properties(bench_group_smoke PROPERTIES PASS_REGULAR_EXPRESSION "lora gate/up +dx fused")
