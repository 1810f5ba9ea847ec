#include "train/dist.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"

#ifdef MEDTUNE_HAVE_MPI
#include <mpi.h>
#endif

// Gradient chunks of the chain: a rank passes chunk c on while it receives chunk c + 1, so a
// round costs about one gradient's transfer plus N chunks, not N gradients.
enum { DIST_CHUNK_FLOATS = 1 << 18, DIST_TAG_CHAIN = 1 };

// The launchers set these in every rank's environment: Open MPI's mpirun, MPICH/Hydra and
// Slurm (PMI), PMIx. Without one of them medtune is a single process and never touches MPI,
// so the one-process command line needs no MPI runtime and starts as fast as before.
static int launcher_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return getenv("PMIX_RANK") ? 2 : 0;
}

void dist_init_single(dist_ctx *d) {
    memset(d, 0, sizeof *d);
    d->size = 1;
}

int dist_init(dist_ctx *d) {
    dist_init_single(d);
    int launched = launcher_size();
#ifdef MEDTUNE_HAVE_MPI
    if (launched < 1) return 0;
    int provided;
    // Only the main thread calls MPI; OpenMP threads never do.
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return err_set("mpi: MPI_Init_thread failed");
    d->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    return 0;
#else
    if (launched > 1)
        return err_set("mpi: launched as %d ranks, but this medtune was built without MPI "
                       "(MEDTUNE_MPI=OFF): install libopenmpi-dev and rebuild",
                       launched);
    return 0;
#endif
}

#ifdef MEDTUNE_HAVE_MPI
static void wait_sends(dist_ctx *d) {
    if (d->n_reqs) MPI_Waitall((int)d->n_reqs, (MPI_Request *)d->reqs, MPI_STATUSES_IGNORE);
    d->n_reqs = 0;
}
#endif

void dist_free(dist_ctx *d) {
#ifdef MEDTUNE_HAVE_MPI
    if (d->mpi) {
        wait_sends(d);
        MPI_Finalize();
    }
#endif
    free(d->reqs);
    memset(d, 0, sizeof *d);
    d->size = 1;
}

int dist_reserve(dist_ctx *d, size_t n) {
#ifdef MEDTUNE_HAVE_MPI
    if (!d->mpi || d->size == 1) return 0;
    size_t n_chunks = (n + DIST_CHUNK_FLOATS - 1) / DIST_CHUNK_FLOATS;
    free(d->reqs);
    d->reqs = calloc(n_chunks ? n_chunks : 1, sizeof(MPI_Request));
    if (!d->reqs) return err_set("mpi: out of memory for %zu requests", n_chunks);
#else
    (void)d;
    (void)n;
#endif
    return 0;
}

int dist_agree(dist_ctx *d, int failed, int *first, int *stop) {
    // v[0]: size - rank of a failing rank, so the maximum names the lowest one.
    int v[2] = {failed ? d->size - d->rank : 0, stop ? *stop : 0};
#ifdef MEDTUNE_HAVE_MPI
    if (d->mpi) MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
    if (stop) *stop = v[1];
    *first = v[0] ? d->size - v[0] : -1;
    return v[0] ? -1 : 0;
}

static void add_into(float *sum, const float *g, size_t n) {
    for (size_t i = 0; i < n; i++) sum[i] += g[i];
}

void dist_chain_add(dist_ctx *d, float *sum, const float *g, size_t n, int round, int rounds) {
    // The fold starts from +0 on every path (one process too), so signed zeros and the
    // first addition are the same arithmetic whatever the number of ranks.
    int first = round == 0 && d->rank == 0;
#ifdef MEDTUNE_HAVE_MPI
    if (d->mpi && d->size > 1) {
        double t0 = clock_now_s();
        wait_sends(d);  // the previous round's sends still read sum
        int last = round == rounds - 1 && d->rank == d->size - 1;
        int prev = (d->rank + d->size - 1) % d->size, next = (d->rank + 1) % d->size;
        size_t n_chunks = (n + DIST_CHUNK_FLOATS - 1) / DIST_CHUNK_FLOATS;
        if (first) memset(sum, 0, n * sizeof(float));
        for (size_t c = 0; c < n_chunks; c++) {
            size_t off = c * DIST_CHUNK_FLOATS;
            int len = (int)(n - off < DIST_CHUNK_FLOATS ? n - off : DIST_CHUNK_FLOATS);
            if (!first)
                MPI_Recv(sum + off, len, MPI_FLOAT, prev, DIST_TAG_CHAIN, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE);
            add_into(sum + off, g + off, (size_t)len);
            if (!last) {
                MPI_Isend(sum + off, len, MPI_FLOAT, next, DIST_TAG_CHAIN, MPI_COMM_WORLD,
                          (MPI_Request *)d->reqs + d->n_reqs++);
                d->comm_bytes += (int64_t)len * (int64_t)sizeof(float);
            }
        }
        d->comm_s += clock_now_s() - t0;
        return;
    }
#endif
    (void)rounds;
    if (first) memset(sum, 0, n * sizeof(float));
    add_into(sum, g, n);
}

void dist_bcast_sum(dist_ctx *d, float *sum, size_t n) {
#ifdef MEDTUNE_HAVE_MPI
    if (d->mpi && d->size > 1) {
        double t0 = clock_now_s();
        wait_sends(d);
        for (size_t off = 0; off < n; off += (size_t)DIST_CHUNK_FLOATS * 64) {
            size_t len = n - off < (size_t)DIST_CHUNK_FLOATS * 64 ? n - off
                                                                 : (size_t)DIST_CHUNK_FLOATS * 64;
            MPI_Bcast(sum + off, (int)len, MPI_FLOAT, d->size - 1, MPI_COMM_WORLD);
        }
        if (d->rank == d->size - 1) d->comm_bytes += (int64_t)(n * sizeof(float));
        d->comm_s += clock_now_s() - t0;
    }
#else
    (void)d;
    (void)sum;
    (void)n;
#endif
}

void dist_gather_dealt(dist_ctx *d, const double *mine, double *all, double *scratch, int64_t n,
                       int width) {
    int64_t per = (n + d->size - 1) / d->size;
#ifdef MEDTUNE_HAVE_MPI
    if (d->mpi && d->size > 1) {
        MPI_Allgather(mine, (int)(per * width), MPI_DOUBLE, scratch, (int)(per * width),
                      MPI_DOUBLE, MPI_COMM_WORLD);
        for (int64_t j = 0; j < n; j++)
            memcpy(all + j * width, scratch + ((j % d->size) * per + j / d->size) * width,
                   (size_t)width * sizeof(double));
        return;
    }
#endif
    (void)scratch;
    (void)per;
    memcpy(all, mine, (size_t)(n * width) * sizeof(double));
}

void dist_bcast_bytes(dist_ctx *d, void *buf, size_t n) {
#ifdef MEDTUNE_HAVE_MPI
    if (d->mpi && d->size > 1) {
        const size_t step = (size_t)1 << 30;
        for (size_t off = 0; off < n; off += step)
            MPI_Bcast((char *)buf + off, (int)(n - off < step ? n - off : step), MPI_BYTE, 0,
                      MPI_COMM_WORLD);
    }
#else
    (void)d;
    (void)buf;
    (void)n;
#endif
}

int dist_same_digest(dist_ctx *d, const uint8_t digest[32], int *first_diff) {
    uint8_t root[32];
    memcpy(root, digest, 32);
    dist_bcast_bytes(d, root, 32);
    int first;
    int differs = dist_agree(d, memcmp(root, digest, 32) != 0, &first, NULL);
    *first_diff = first;
    return !differs;
}
