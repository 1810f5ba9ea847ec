// Where a run stands in its data: enough to draw the same next windows after a resume. The
// batcher (train/batcher.h) advances it; a checkpoint (checkpoints/state.h) stores it. It has
// its own header so that checkpoints need not include the training loop.
#ifndef MEDTUNE_CHECKPOINTS_DATA_CURSOR_H
#define MEDTUNE_CHECKPOINTS_DATA_CURSOR_H

#include <stdint.h>

typedef struct {
    int64_t epoch;         // epochs of the train split started so far - 1
    int64_t index;         // next position in the train permutation
    int64_t replay_epoch;  // same for the replay split
    int64_t replay_index;
    int64_t sample;        // windows drawn so far (train + replay): drives the replay mix
} data_cursor;

#endif
