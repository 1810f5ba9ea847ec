// `medtune info SHARD_DIR`: describes a shard directory and verifies every frame checksum.
#ifndef MEDTUNE_DATA_PREP_SHARD_INFO_H
#define MEDTUNE_DATA_PREP_SHARD_INFO_H

// True when path is a directory holding a shard manifest.json.
int shard_dir_matches(const char *path);
// Prints the description (text, or one JSON object) to stdout after reading every frame of
// both splits; a corrupted shard is an error naming the file.
int shard_dir_print(const char *path, int json);

#endif
