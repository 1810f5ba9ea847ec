// The checksum of state.h5 (state format 3, docs/formats.md): a SHA-256 of the file's HDF5
// part, kept in the file's first 512 bytes, HDF5's user block, which HDF5 leaves to the
// application (h5py, h5dump and libhdf5 read the file as usual). It is checked before libhdf5
// opens the file: libhdf5 1.10 reads out of bounds on some corrupt files (docs/fuzzing.md),
// so a corrupt checkpoint must be refused before libhdf5 decodes any of it.
//
// The user block, text padded with NUL bytes to 512:
//   medtune state checksum\n
//   sha256 <64 lowercase hex digits: SHA-256 of bytes 512 .. end>\n
//   size <decimal number of bytes after the user block>\n
#ifndef MEDTUNE_CHECKPOINTS_STATE_CHECKSUM_H
#define MEDTUNE_CHECKPOINTS_STATE_CHECKSUM_H

// The user block size passed to H5Pset_userblock (a power of two, at least 512).
#define STATE_CHECKSUM_BLOCK 512

// Fills the user block of the closed HDF5 file at `path` (created with a user block of
// STATE_CHECKSUM_BLOCK bytes) with the checksum of the rest, and fsyncs the file.
int state_checksum_write(const char *path);

// Checks the file at `path` without libhdf5. A file that starts with the checksum block must
// match it (-1 naming the problem otherwise). A file that starts with the HDF5 signature was
// written before format 3, without a checksum: 0 with *present = 0, the caller decides.
// Anything else is refused.
int state_checksum_verify(const char *path, int *present);

#endif
