# Area `plan`: the training plan's and the decoder's arenas are sized by the same buffer list
# that carves them (common/arena.h); every buffer is used by a training step. Under
# MEDTUNE_SANITIZE, AddressSanitizer checks the kernels stay inside their slices.
medtune_add_test(NAME plan_arena COMMAND test_plan LABELS model)
