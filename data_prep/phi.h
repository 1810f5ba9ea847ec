// Optional scrubbing of personal identifiers (PCRE2, JIT-compiled): e-mail addresses, URLs,
// phone numbers and long ID-like numbers become [EMAIL] [URL] [PHONE] [ID]. The patterns are
// applied in that order, so an address inside a URL counts once. It is a coarse filter
// for accidental identifiers in scraped text, not a de-identification of clinical notes.
#ifndef MEDTUNE_DATA_PREP_PHI_H
#define MEDTUNE_DATA_PREP_PHI_H

#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"

typedef enum { PHI_EMAIL, PHI_URL, PHI_PHONE, PHI_ID, PHI_KINDS } phi_kind;

typedef struct phi_scrubber phi_scrubber;

phi_scrubber *phi_scrubber_new(void);
void phi_scrubber_free(phi_scrubber *p);
const char *phi_kind_name(phi_kind k);

// Replaces identifiers in buf in place (it may grow); adds the replacements per kind to
// counts. Safe to call from several threads on one scrubber.
int phi_scrub(const phi_scrubber *p, strbuf *buf, uint64_t counts[PHI_KINDS]);

#endif
