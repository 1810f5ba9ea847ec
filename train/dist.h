// Data-parallel training across processes (docs/training.md, "Several processes and
// machines"). Every MPI call of medtune lives in train/dist.c; a build without MPI
// (MEDTUNE_MPI=OFF) has the same functions for a world of one process.
//
// Exactness: a step's micro-batches m = 0 .. N*A-1 are dealt round-robin (m goes to rank m % N
// in round m / N) and the step's gradient is the left fold S = ((0 + g0) + g1) + ... in m
// order, the same arithmetic whatever N is. Round k's partial sum travels along the chain of
// ranks 0 -> 1 -> ... -> N-1, then on to rank 0 for round k+1; each rank adds its own g. The
// last rank then broadcasts S. Loss sums are folded in m order from an all-gather.
#ifndef MEDTUNE_TRAIN_DIST_H
#define MEDTUNE_TRAIN_DIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, size;
    int mpi;            // 1 when MPI was initialised (launched by mpirun), 0 for one process
    double comm_s;      // seconds spent in dist_chain_add/dist_bcast_sum since the last reset
    int64_t comm_bytes; // bytes this rank sent in them since the last reset
    void *reqs;         // [n_chunks] MPI requests of the sends still in flight
    size_t n_reqs;
} dist_ctx;

// Joins the MPI job when the process was launched by mpirun (or another MPI launcher),
// otherwise sets up a world of one. Fails when launched as several ranks by a build without
// MPI.
int dist_init(dist_ctx *d);
// A world of one process, without MPI.
void dist_init_single(dist_ctx *d);
// Waits for sends in flight and leaves the MPI job.
void dist_free(dist_ctx *d);

// Room for the requests of the chain over gradients of n floats (call once before
// dist_chain_add).
int dist_reserve(dist_ctx *d, size_t n);

// Agreement after every step that can fail on one rank only (I/O, a full disk on rank 0):
// returns -1 on every rank when any rank passed failed != 0, else 0. *first gets the lowest
// failing rank (it alone reports its error). *stop (may be NULL) is ORed over the ranks.
int dist_agree(dist_ctx *d, int failed, int *first, int *stop);

// One round of the gradient chain: on return, on this rank, sum[0..n) holds
// S_prev + g where S_prev is the running sum received from the previous rank in the chain
// (0 for micro-batch 0 of the step) and the result has been passed on to the next rank, unless
// this is the step's last micro-batch. `round` counts from 0, `rounds` is grad_accum.
void dist_chain_add(dist_ctx *d, float *sum, const float *g, size_t n, int round, int rounds);
// After the last round: every rank gets the step's gradient from the rank that finished it.
void dist_bcast_sum(dist_ctx *d, float *sum, size_t n);

// Items j = 0 .. n-1 of `width` doubles each, item j computed by rank j % N and stored by it
// at mine[(j / N) * width ...] (mine holds ceil(n / N) items): fills all[j * width ...] on
// every rank. scratch holds N * ceil(n / N) * width doubles.
void dist_gather_dealt(dist_ctx *d, const double *mine, double *all, double *scratch, int64_t n,
                       int width);

// Rank 0's bytes replace buf on every rank (state read from a checkpoint by rank 0 alone).
void dist_bcast_bytes(dist_ctx *d, void *buf, size_t n);

// 1 when rank 0's digest equals this rank's, on every rank; *first_diff is the lowest rank
// that differs (or -1).
int dist_same_digest(dist_ctx *d, const uint8_t digest[32], int *first_diff);

#endif
